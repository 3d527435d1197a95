// The attention explorer: calls the public API exactly as a client would (POST v1/sentiment, POST v1/qa with
// "return_attention": true) and tints the original text by the attention each token receives.
// Built with DOM calls only (no markup parsed from strings: the text is the user's); colours are set through
// the CSSOM, which the page's CSP allows (element.style), unlike inline style attributes.
(() => {
  "use strict";

  const KEY_STORAGE = "attention-serve.api-key";
  // A single-hue sequential scale (ColorBrewer Blues): ordered by lightness alone, so it reads the same for
  // every common colour-vision deficiency and in greyscale.
  const SCALE = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]
    .map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const $ = (id) => document.getElementById(id);

  // The API lives beside the page: /explore → /v1/…, /prefix/explore → /prefix/v1/….
  function apiUrl(route) {
    const folder = location.pathname.replace(/explore\/?$/, "");
    return new URL(route, location.origin + folder).toString();
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // ---- colour ------------------------------------------------------------------------------------------------

  function colour(t) {
    const x = Math.min(Math.max(t, 0), 1) * (SCALE.length - 1);
    const i = Math.min(Math.floor(x), SCALE.length - 2);
    const f = x - i;
    const rgb = SCALE[i].map((c, k) => Math.round(c + (SCALE[i + 1][k] - c) * f));
    return `rgb(${rgb.join(", ")})`;
  }

  function tint(node, t) {
    node.style.backgroundColor = colour(t);
    node.style.color = t > 0.55 ? "#ffffff" : "";
  }

  function drawLegends() {
    for (const legend of document.querySelectorAll(".legend")) {
      const swatches = el("span", { class: "swatches" });
      for (let i = 0; i <= 8; i += 1) {
        const swatch = el("span", { class: "swatch" });
        swatch.style.backgroundColor = colour(i / 8);
        swatches.append(swatch);
      }
      legend.replaceChildren(el("span", { text: "less" }), swatches, el("span", { text: "more attention" }));
    }
  }

  // ---- attention --------------------------------------------------------------------------------------------

  // The weights the layer selector asks for: one layer, the mean over layers, or rollout.
  function weightsFor(attention, choice) {
    if (choice === "rollout") return attention.rollout;
    if (choice === "mean") {
      const layers = attention.layers;
      return layers[0].map((_, j) => layers.reduce((sum, layer) => sum + layer[j], 0) / layers.length);
    }
    return attention.layers[Number(choice)];
  }

  function describeChoice(choice) {
    if (choice === "rollout") return "rollout";
    if (choice === "mean") return "average over layers";
    return `layer ${Number(choice) + 1}`;
  }

  function updateLayerOptions(select, attention) {
    if (!attention) return;
    const wanted = ["rollout", "mean", ...attention.layers.map((_, i) => String(i))];
    const present = Array.from(select.options, (o) => o.value);
    if (wanted.join() === present.join()) return;
    const chosen = select.value;
    select.replaceChildren(
      ...wanted.map((value) =>
        el("option", { value, text: value === "rollout" ? "rollout through all layers" : describeChoice(value) })),
    );
    select.value = wanted.includes(chosen) ? chosen : "rollout";
  }

  // The text with each token's characters tinted by its weight, split at every token, answer, window and
  // truncation boundary so that the original characters (not word pieces) are what is shown.
  //   tokens: [{index, start, end, token}] over `text`; marks: [{start, end, rank}] (answers);
  //   range: [start, end) of what the model read, or null; cut: where truncation stopped reading, or null.
  function tintedText(text, tokens, weights, scale, { marks = [], range = null, cut = null, label }) {
    const bounds = new Set([0, text.length]);
    for (const t of tokens) bounds.add(t.start).add(t.end);
    for (const m of marks) bounds.add(m.start).add(m.end);
    if (range) bounds.add(range[0]).add(range[1]);
    if (cut !== null) bounds.add(cut);
    const points = Array.from(bounds).filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
    const tokenAt = new Int32Array(text.length).fill(-1);
    tokens.forEach((t, k) => tokenAt.fill(k, t.start, t.end));

    const box = el("div", {
      class: "tokens",
      tabindex: "0",
      role: "group",
      "aria-label": `${label}, tinted by attention; arrow keys move from token to token`,
    });
    for (let p = 0; p < points.length - 1; p += 1) {
      const [a, b] = [points[p], points[p + 1]];
      if (range && a === range[0]) box.append(el("span", { class: "marker", text: "window ⟦" }));
      if (cut !== null && a === cut) {
        box.append(el("span", { class: "marker cut", text: "✂ truncated: not read from here" }));
      }
      const starting = marks.filter((m) => m.start === a).map((m) => m.rank);
      if (starting.length) box.append(el("span", { class: "badge", text: starting.join(",") }));

      const k = tokenAt[a];
      const classes = [];
      if (range && (a < range[0] || a >= range[1])) classes.push("outside");
      if (cut !== null && a >= cut) classes.push("unread");
      const covering = marks.filter((m) => m.start <= a && b <= m.end);
      if (covering.length) classes.push("answer");
      if (covering.some((m) => m.rank === 1)) classes.push("best");
      const span = el("span", { class: classes.join(" "), text: text.slice(a, b) });
      span.dataset.ranks = covering.map((m) => m.rank).join(",");
      if (k >= 0) {
        const w = weights[tokens[k].index];
        span.classList.add("tok");
        span.dataset.token = String(k);
        span.dataset.weight = w.toFixed(4);
        span.dataset.piece = tokens[k].token;
        tint(span, scale.hi > scale.lo ? (w - scale.lo) / (scale.hi - scale.lo) : 1);
      }
      box.append(span);
      if (range && b === range[1] && b !== text.length) box.append(el("span", { class: "marker", text: "⟧" }));
    }
    if (range && range[1] === text.length) box.append(el("span", { class: "marker", text: "⟧" }));
    box.dataset.count = String(tokens.length);
    return box;
  }

  function tokensOf(attention, source) {
    return attention.tokens
      .map((t, index) => ({ ...t, index }))
      .filter((t) => t.source === source && t.start !== null && t.end !== null && t.end > t.start);
  }

  function specialShare(attention, weights) {
    const total = weights.reduce((s, w) => s + w, 0);
    const special = attention.tokens.reduce((s, t, i) => s + (t.source === "special" ? weights[i] : 0), 0);
    return total > 0 ? special / total : 0;
  }

  // The tint runs from the least to the most any drawn token gets, so that differences show even where
  // the weights are close (rollout); the note gives both ends in numbers.
  function scaleOf(tokens, weights) {
    const values = tokens.map((t) => weights[t.index]);
    return values.length ? { lo: Math.min(...values), hi: Math.max(...values) } : { lo: 0, hi: 0 };
  }

  function scaleNote(attention, weights, scale, choice) {
    const share = Math.round(100 * specialShare(attention, weights));
    return `Showing ${describeChoice(choice)}: lightest tint ${scale.lo.toFixed(4)}, darkest ${scale.hi.toFixed(4)}. ` +
      `[CLS] and [SEP] take ${share} % of this attention and are not drawn.`;
  }

  // ---- hover and keyboard readout ---------------------------------------------------------------------------

  const tooltip = $("tooltip");

  function readout(span) {
    const ranks = span.dataset.ranks ? ` · in answer ${span.dataset.ranks}` : "";
    return `“${span.dataset.piece}” weight ${span.dataset.weight}${ranks}`;
  }

  function showTooltip(span) {
    tooltip.textContent = readout(span);
    tooltip.hidden = false;
    const box = span.getBoundingClientRect();
    tooltip.style.left = `${Math.max(4, Math.min(box.left, window.innerWidth - tooltip.offsetWidth - 4))}px`;
    const below = box.bottom + 6 + tooltip.offsetHeight <= window.innerHeight;
    tooltip.style.top = `${below ? box.bottom + 6 : box.top - tooltip.offsetHeight - 6}px`;
  }

  function hideTooltip() {
    tooltip.hidden = true;
  }

  function setActive(box, k) {
    for (const old of box.querySelectorAll(".tok.active")) old.classList.remove("active");
    const spans = box.querySelectorAll(`.tok[data-token="${k}"]`);
    if (!spans.length) return;
    for (const span of spans) span.classList.add("active");
    box.dataset.active = String(k);
    spans[0].scrollIntoView({ block: "nearest" });
    showTooltip(spans[0]);
    const status = box.closest(".view").querySelector(".status");
    status.textContent = readout(spans[0]);
  }

  document.addEventListener("mouseover", (event) => {
    const span = event.target.closest ? event.target.closest(".tok") : null;
    if (span) showTooltip(span);
    else if (!document.activeElement || !document.activeElement.classList.contains("tokens")) hideTooltip();
  });
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!box.classList || !box.classList.contains("tokens")) return;
    const count = Number(box.dataset.count);
    if (!count) return;
    const current = box.dataset.active === undefined ? -1 : Number(box.dataset.active);
    const moves = { ArrowRight: current + 1, ArrowDown: current + 1, ArrowLeft: current - 1, ArrowUp: current - 1,
      Home: 0, End: count - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    setActive(box, Math.min(Math.max(moves[event.key], 0), count - 1));
  });
  document.addEventListener("focusin", (event) => {
    const box = event.target;
    if (box.classList && box.classList.contains("tokens") && box.dataset.count !== "0") {
      setActive(box, box.dataset.active === undefined ? 0 : Number(box.dataset.active));
    }
  });
  document.addEventListener("focusout", (event) => {
    if (event.target.classList && event.target.classList.contains("tokens")) {
      for (const old of event.target.querySelectorAll(".tok.active")) old.classList.remove("active");
      hideTooltip();
    }
  });

  // ---- the API ----------------------------------------------------------------------------------------------

  function askForKey(reason) {
    const dialog = $("key-dialog");
    const input = $("key-input");
    $("key-reason").textContent = reason;
    input.value = "";
    return new Promise((resolve) => {
      let answer = null;
      const use = (event) => {
        event.preventDefault();
        answer = input.value.trim() || null;
        dialog.close();
      };
      const cancel = () => dialog.close();
      $("key-form").addEventListener("submit", use);
      $("key-cancel").addEventListener("click", cancel);
      dialog.addEventListener("close", () => {
        $("key-form").removeEventListener("submit", use);
        $("key-cancel").removeEventListener("click", cancel);
        resolve(answer);
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
  }

  async function post(route, payload) {
    const send = () => {
      const headers = { "Content-Type": "application/json" };
      const key = sessionStorage.getItem(KEY_STORAGE);
      if (key) headers["X-API-Key"] = key;
      return fetch(apiUrl(route), {
        method: "POST", headers, body: JSON.stringify(payload), cache: "no-store", credentials: "same-origin",
      });
    };
    let response = await send();
    if (response.status === 401) {
      // Ask once per refused request; a key that is refused again is dropped and reported, not asked for in a loop.
      const hadKey = sessionStorage.getItem(KEY_STORAGE) !== null;
      sessionStorage.removeItem(KEY_STORAGE);
      const key = await askForKey(hadKey ? "The service refused the stored API key. Enter it again:"
        : "This service requires an API key.");
      if (key) {
        sessionStorage.setItem(KEY_STORAGE, key);
        response = await send();
        if (response.status === 401) sessionStorage.removeItem(KEY_STORAGE);
      }
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { response, body };
  }

  function curlCommand(route, payload) {
    const quote = (s) => `'${s.replace(/'/g, "'\\''")}'`;
    const lines = [`curl -s ${quote(apiUrl(route))}`, "-H 'Content-Type: application/json'"];
    // The key itself never goes into the clipboard: the command reads it from the environment.
    if (sessionStorage.getItem(KEY_STORAGE)) lines.push('-H "X-API-Key: $ATTENTION_SERVE_API_KEY"');
    lines.push(`-d ${quote(JSON.stringify(payload))}`);
    return lines.join(" \\\n  ");
  }

  // ---- the models served ------------------------------------------------------------------------------------

  // What GET v1/models lists, per task, the default first. Empty when the list could not be read: the page then
  // names no model and each task's default answers, as it would for a client that never asked.
  const models = { sentiment: [], qa: [] };
  let modelsRefused = false; // the list needed an API key: read again once a request has been answered with one
  const MODELS_WAIT_MS = 8000;

  async function loadModels() {
    const headers = {};
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers["X-API-Key"] = key;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), MODELS_WAIT_MS);
    try {
      const response = await fetch(apiUrl("v1/models"), {
        headers, cache: "no-store", credentials: "same-origin", signal: abort.signal,
      });
      modelsRefused = response.status === 401;
      if (!response.ok) return;
      const body = await response.json();
      const listed = body && Array.isArray(body.models) ? body.models : [];
      for (const task of Object.keys(models)) {
        const own = listed.filter((m) => m && m.task === task && typeof m.id === "string" && m.id);
        models[task] = [...own.filter((m) => m.default), ...own.filter((m) => !m.default)];
      }
    } catch {
      // Unreachable, too slow or not JSON: the defaults answer.
    } finally {
      clearTimeout(timer);
    }
  }

  const modelOf = (task, id) => models[task].find((m) => m.id === id) || null;

  // ---- one task view ----------------------------------------------------------------------------------------

  function setupView({ name, route, build, fields, render }) {
    const form = $(`${name}-form`);
    const select = $(`${name}-layer`);
    const status = $(`${name}-status`);
    const errorBox = $(`${name}-error`);
    const results = $(`${name}-results`);
    const curlBox = $(`${name}-curl-text`);
    const chooserBox = $(`${name}-model-choice`);
    const chooser = $(`${name}-model`);
    const chooserNote = $(`${name}-model-note`);
    let sent = null; // the last request made (what "copy as curl" copies once there is one)
    let shown = null; // {request, body}: the answer on screen, redrawn when the layer choice changes
    let busy = false;

    // The model chooser: shown only when the task has more than one model; the default is chosen first.
    function showModels() {
      const listed = models[name];
      chooserBox.hidden = listed.length < 2;
      if (chooserBox.hidden) return;
      const kept = chooser.value;
      chooser.replaceChildren(...listed.map((m) => el("option", { value: m.id, text: `${m.id} — ${m.family}` })));
      chooser.value = modelOf(name, kept) ? kept : listed[0].id;
      describeModel();
    }

    function describeModel() {
      const model = modelOf(name, chooser.value);
      if (!model) return;
      const parts = [`version ${model.version}`];
      if (Array.isArray(model.labels) && model.labels.length) parts.push(`labels ${model.labels.join(", ")}`);
      if (model.multi_label) parts.push("each label scored on its own");
      chooserNote.textContent = parts.join(" · ");
    }

    // What the form asks, with the chosen model when there is a choice (otherwise the task's default answers).
    function request() {
      const built = build();
      if (!chooserBox.hidden && chooser.value) built.payload = { model: chooser.value, ...built.payload };
      return built;
    }

    function clearErrors() {
      errorBox.hidden = true;
      errorBox.replaceChildren();
      for (const id of Object.values(fields)) {
        $(id).removeAttribute("aria-invalid");
        $(`${id}-error`).hidden = true;
        $(`${id}-error`).textContent = "";
      }
    }

    function fieldError(id, message) {
      const note = $(`${id}-error`);
      note.textContent = note.textContent ? `${note.textContent} ${message}` : message;
      note.hidden = false;
      $(id).setAttribute("aria-invalid", "true");
    }

    function showError(response, body, request) {
      const error = body && body.error ? body.error : { code: "http_error", message: response.statusText, details: [] };
      const retry = response.headers.get("Retry-After");
      const headings = {
        401: "The API key was refused; send again to enter another.",
        422: "The service cannot read this input.",
        429: "Too many requests from this address.",
        503: "The service is busy or a model is unavailable.",
        504: "The model did not answer in time.",
      };
      const title = headings[response.status] || `The request failed (HTTP ${response.status}).`;
      const parts = [el("p", { class: "title", text: title }),
        el("p", { text: `${error.message} (${response.status} ${error.code})` })];
      if (retry && (response.status === 429 || response.status === 503)) {
        parts.push(el("p", { class: "retry", text: `Retry after ${retry} s.` }));
      }
      const unplaced = [];
      for (const detail of error.details || []) {
        const placed = request.placeField(detail.field || "");
        if (placed) fieldError(placed.id, placed.prefix + detail.message);
        else unplaced.push(detail.field ? `${detail.field}: ${detail.message}` : detail.message);
      }
      if (unplaced.length) parts.push(el("ul", {}, ...unplaced.map((text) => el("li", { text }))));
      if (error.request_id) parts.push(el("p", { class: "request-id", text: `request id ${error.request_id}` }));
      errorBox.replaceChildren(...parts);
      errorBox.hidden = false;
    }

    function draw() {
      hideTooltip(); // its token is about to be replaced
      const model = shown && shown.body.model ? modelOf(name, shown.body.model.id) : null;
      results.replaceChildren(...(shown ? render(shown.request, shown.body, select.value, model) : []));
    }

    async function submit() {
      if (busy) return;
      busy = true;
      clearErrors();
      const asked = request();
      sent = asked;
      if (!curlBox.hidden) curlBox.textContent = curlCommand(route, asked.payload);
      status.textContent = "Asking the model…";
      form.setAttribute("aria-busy", "true");
      try {
        const started = performance.now();
        const { response, body } = await post(route, asked.payload);
        if (response.ok && body && Array.isArray(body.results)) {
          shown = { request: asked, body };
          updateLayerOptions(select, body.results.map((r) => r.attention).find((a) => a));
          draw();
          const ms = Math.round(performance.now() - started);
          status.textContent = `${body.model.id} ${body.model.version} answered in ${ms} ms.`;
          if (modelsRefused) refreshModels(); // the key that was just accepted may read the list too
        } else {
          shown = null;
          draw();
          status.textContent = "";
          showError(response, body, asked);
        }
      } catch (exc) {
        status.textContent = "";
        errorBox.replaceChildren(el("p", { class: "title", text: "Could not reach the service." }),
          el("p", { text: String(exc && exc.message ? exc.message : exc) }));
        errorBox.hidden = false;
      } finally {
        busy = false;
        form.removeAttribute("aria-busy");
      }
    }

    async function copyCurl() {
      const command = curlCommand(route, (sent || request()).payload);
      curlBox.textContent = command;
      curlBox.hidden = false;
      try {
        await navigator.clipboard.writeText(command);
        status.textContent = "Copied the curl command for this request.";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(curlBox);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        status.textContent = "The clipboard is not available here: the command is selected below, copy it with Ctrl+C.";
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit();
      }
    });
    $(`${name}-curl`).addEventListener("click", copyCurl);
    select.addEventListener("change", draw);
    chooser.addEventListener("change", describeModel);
    return { showModels };
  }

  // ---- sentiment --------------------------------------------------------------------------------------------

  function buildSentiment() {
    const raw = $("sentiment-text").value;
    const lines = raw.split("\n").map((line, number) => ({ line: line.replace(/\r$/, ""), number }));
    const filled = lines.filter((l) => l.line.trim() !== "");
    // One line is sent as one text; several as a list. Blank lines between texts are skipped, but an
    // all-blank box is sent as it is, so that the API itself says what is wrong with it.
    const sent = filled.length > 1 ? filled : [{ line: filled.length ? filled[0].line : raw, number: 0 }];
    const payload = { text: sent.length > 1 ? sent.map((l) => l.line) : sent[0].line, return_attention: true };
    return {
      payload,
      texts: sent.map((l) => l.line),
      placeField(field) {
        const match = /^text(?:\.(\d+))?$/.exec(field);
        if (!match) return null;
        const item = match[1] === undefined ? null : sent[Number(match[1])];
        return { id: "sentiment-text", prefix: item && sent.length > 1 ? `Line ${item.number + 1}: ` : "" };
      },
    };
  }

  // Whether the scores are each label's own (a multi-label checkpoint's sigmoids) rather than one distribution:
  // as /v1/models says for the model that answered; unlisted, when some text's scores do not add up to 1.
  function independentScores(body, model) {
    if (model) return Boolean(model.multi_label);
    const total = (result) => Object.values(result.probabilities).reduce((sum, p) => sum + p, 0);
    return body.results.some((result) => Math.abs(total(result) - 1) > 0.01);
  }

  // Any labels, as many as the checkpoint has and named as it names them, in its order.
  function renderSentiment(request, body, choice, model) {
    const independent = independentScores(body, model);
    return body.results.map((result, i) => {
      const text = request.texts[i];
      const card = el("article", { class: "result sentiment-result" });
      const heading = el("h3", {}, `Text ${i + 1}: `, el("span", { class: "label-name", text: result.label }));
      const probabilities = el("div", { class: "probabilities" });
      for (const [label, p] of Object.entries(result.probabilities)) {
        const fill = el("div", { class: "bar-fill" });
        fill.style.width = `${(100 * Math.min(Math.max(p, 0), 1)).toFixed(1)}%`;
        probabilities.append(el("span", { class: "label", text: label }),
          el("div", { class: "bar", role: "presentation" }, fill),
          el("span", { class: "probability", text: p.toFixed(4) }));
      }
      card.append(heading, probabilities);
      if (independent) {
        card.append(el("p", { class: "meta multi-label-note",
          text: "Each label scored on its own: the scores are independent and need not add up to 1." }));
      }
      const attention = result.attention;
      if (!attention) {
        card.append(el("p", { class: "tokens-plain", text }));
        return card;
      }
      const tokens = tokensOf(attention, "text");
      const weights = weightsFor(attention, choice);
      const scale = scaleOf(tokens, weights);
      const cut = result.truncated && tokens.length ? tokens[tokens.length - 1].end : null;
      const meta = result.truncated
        ? `Truncated: the model read ${result.tokens} tokens, up to character ${cut} of ${text.length}; the rest ` +
          "is struck through."
        : `${result.tokens} tokens read, the whole text.`;
      card.append(el("p", { class: result.truncated ? "meta truncated" : "meta", text: meta }));
      card.append(tintedText(text, tokens, weights, scale, { cut, label: `Text ${i + 1}` }));
      card.append(el("p", { class: "meta scale-note", text: scaleNote(attention, weights, scale, choice) }));
      return card;
    });
  }

  // ---- question answering -----------------------------------------------------------------------------------

  function buildQA() {
    const topK = $("qa-top-k").value.trim();
    const payload = {
      question: $("qa-question").value,
      context: $("qa-context").value,
      // A number when it is one; otherwise what was typed, so that the API's 422 names the field.
      top_k: /^-?\d+$/.test(topK) ? Number(topK) : topK,
      return_attention: true,
      handle_impossible_answer: $("qa-impossible").checked,
    };
    const ids = { question: "qa-question", context: "qa-context", top_k: "qa-top-k" };
    return {
      payload,
      placeField: (field) => (ids[field] ? { id: ids[field], prefix: "" } : null),
    };
  }

  // The empty answer (handle_impossible_answer): the model's "no answer in the context", never a span.
  const isNoAnswer = (answer) => answer.text === "" && answer.start === answer.end;

  function answerItem(answer, r) {
    if (isNoAnswer(answer)) {
      return el("li", { class: "answer-item no-answer-item",
        text: `no answer in the context · score ${answer.score.toFixed(4)}` });
    }
    const button = el("button", { type: "button", class: "answer-button", text: `“${answer.text}”`,
      "aria-label": `Answer ${r + 1}: ${answer.text}, score ${answer.score.toFixed(4)}; show it in the context` });
    button.dataset.rank = String(r + 1);
    return el("li", { class: "answer-item" }, button,
      ` score ${answer.score.toFixed(4)} · characters ${answer.start}–${answer.end}`);
  }

  // What "no answer" came to, when it was asked for: the verdict when it won, its score when a span beat it.
  function noAnswerNote(result) {
    const best = result.answers[0];
    if (isNoAnswer(best)) {
      return el("p", { class: "no-answer", role: "status",
        text: `No answer in the context (score ${best.score.toFixed(4)}): the model's null score beats every span.` });
    }
    if (typeof result.no_answer_score !== "number") return null;
    return el("p", { class: "meta null-note",
      text: `“No answer” scored ${result.no_answer_score.toFixed(4)}, below the best answer.` });
  }

  function renderQA(request, body, choice) {
    const { question, context } = request.payload;
    return body.results.map((result) => {
      const card = el("article", { class: "result qa-result" });
      const answers = result.answers;
      if (!answers.length) {
        card.append(el("p", { class: "no-answer", role: "status",
          text: "No answer: the model found no answer to this question in the context." }));
        card.append(el("p", { class: "source-name", text: "Context" }), el("div", { class: "tokens", text: context }));
        return card;
      }
      const nullWins = isNoAnswer(answers[0]);
      card.append(el("h3", { text: answers.length === 1 ? "Answer" : `Top ${answers.length} answers` }));
      const note = noAnswerNote(result);
      if (note) card.append(note);
      const list = el("ol", { class: "answers" }, ...answers.map(answerItem));
      card.append(list);
      const marks = answers.map((a, r) => ({ start: a.start, end: a.end, rank: r + 1 })).filter((m) => m.end > m.start);
      const attention = result.attention;
      if (!attention) {
        card.append(el("p", { class: "source-name", text: "Context" }),
          tintedText(context, [], [], scaleOf([], []), { marks, label: "Context" }));
        return card;
      }
      const weights = weightsFor(attention, choice);
      const contextTokens = tokensOf(attention, "context");
      const questionTokens = tokensOf(attention, "question");
      const scale = scaleOf([...contextTokens, ...questionTokens], weights);
      const range = contextTokens.length
        ? [contextTokens[0].start, contextTokens[contextTokens.length - 1].end] : null;
      const whole = range && range[0] === 0 && range[1] === context.length;
      card.append(el("p", { class: "source-name", text: "Question" }),
        tintedText(question, questionTokens, weights, scale, { label: "Question" }));
      card.append(el("p", { class: "source-name", text: "Context" }));
      const from = nullWins ? "[CLS] of the null score's window (where the model points for “no answer”)"
        : "best answer's window";
      card.append(el("p", { class: "meta window-note", text: range
        ? `The model read ${result.windows} window${result.windows === 1 ? "" : "s"}; the attention is from the ` +
          `${from}, characters ${range[0]}–${range[1]}${whole ? " (the whole context)" : ""}.`
        : `The model read ${result.windows} windows.` }));
      const box = tintedText(context, contextTokens, weights, scale, { marks, range: whole ? null : range,
        label: "Context" });
      card.append(box);
      card.append(el("p", { class: "meta scale-note", text: scaleNote(attention, weights, scale, choice) }));
      list.addEventListener("click", (event) => {
        const button = event.target.closest(".answer-button");
        if (!button) return;
        for (const old of box.querySelectorAll(".focused")) old.classList.remove("focused");
        const spans = Array.from(box.querySelectorAll("[data-ranks]"))
          .filter((span) => span.dataset.ranks.split(",").includes(button.dataset.rank));
        for (const span of spans) span.classList.add("focused");
        if (spans.length) spans[0].scrollIntoView({ block: "nearest" });
      });
      return card;
    });
  }

  // ---- tabs ---------------------------------------------------------------------------------------------------

  function setupTabs() {
    const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
    const select = (tab, focus) => {
      for (const other of tabs) {
        const chosen = other === tab;
        other.setAttribute("aria-selected", String(chosen));
        $(other.getAttribute("aria-controls")).hidden = !chosen;
      }
      if (focus) tab.focus();
      history.replaceState(null, "", tab.id === "tab-qa" ? "#qa" : "#sentiment");
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => select(tab, false));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (step) select(tabs[(i + step + tabs.length) % tabs.length], true);
      });
    });
    if (location.hash === "#qa") select($("tab-qa"), false);
  }

  const views = [];

  async function refreshModels() {
    await loadModels();
    for (const view of views) view.showModels();
  }

  drawLegends();
  setupTabs();
  views.push(setupView({ name: "sentiment", route: "v1/sentiment", build: buildSentiment, render: renderSentiment,
    fields: { text: "sentiment-text" } }));
  views.push(setupView({ name: "qa", route: "v1/qa", build: buildQA, render: renderQA,
    fields: { question: "qa-question", context: "qa-context", top_k: "qa-top-k" } }));
  // The forms work at once (each task's default answers); ready once the model choosers are settled.
  refreshModels().finally(() => {
    document.documentElement.dataset.ready = "true";
  });
})();
