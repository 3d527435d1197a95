"""The attention explorer (GET /explore) in Debian's headless Chromium, against the real running service.

The page is driven as a user would drive it (typing, clicking, Tab, hovering) and calls the real API. Two
answers the real model does not give on demand, an empty answers list and a 429/503 with Retry-After, are played
to the page by replacing `fetch` for one call. The model choosers are tried on /zoo/explore, the explorer of the
zoo deployment (several tiny checkpoints per task, tests/service/conftest.py). Set
ATTENTION_SERVE_EXPLORER_SCREENSHOTS to a folder (docs) to keep the screenshots (the README shows the sentiment and
QA ones).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.families.tiny import LABELS
from tests.service.conftest import TIGHT_KEY
from tests.system_packages import ensure_debian_binary

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1300",
]
CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. "
    "Four nations have the largest shares: Brazil holds about sixty percent, followed by Peru and Colombia. "
    "The forest was named by the Spanish explorer Francisco de Orellana in 1542."
)
WAIT_S = 60  # one request on two busy cores


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = ensure_debian_binary("chromium", "chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(ensure_debian_binary("chromedriver", "chromium-driver")))
    yield driver
    driver.quit()


def open_page(browser, url: str, view: str = "sentiment") -> None:
    browser.get("about:blank")
    browser.get(f"{url}/explore")
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.documentElement.dataset.ready"))
    browser.execute_script("sessionStorage.clear()")
    browser.get_log("browser")  # start each test with an empty console
    if view == "qa":
        browser.find_element(By.ID, "tab-qa").click()


def console_errors(browser, *expected_statuses: int) -> list[str]:
    """Severe console entries, less the network lines Chromium writes for the HTTP errors a test asked for."""
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return [m for m in severe if not any(f"status of {status}" in m for status in expected_statuses)]


def type_into(browser, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    if len(text) > 500:  # typing thousands of characters one key at a time is slow, not more real
        browser.execute_script("arguments[0].value = arguments[1]", field, text)
    else:
        field.send_keys(text)


def results(browser, selector: str, count: int = 1):
    WebDriverWait(browser, WAIT_S).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, selector)) >= count)
    return browser.find_elements(By.CSS_SELECTOR, selector)


def tints(box) -> list[str]:
    return box.parent.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.tok'), s => s.style.backgroundColor)", box
    )


def shown_text(box) -> str:
    """The text a tinted box shows, less the badges and markers drawn into it."""
    return box.parent.execute_script(
        "return Array.from(arguments[0].children).filter(e => !e.matches('.badge, .marker'))"
        ".map(e => e.textContent).join('')",
        box,
    )


def screenshot(browser, tmp_path: Path, name: str) -> None:
    """The whole page, not only the window."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path = tmp_path / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("ATTENTION_SERVE_EXPLORER_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / name)


def stub_next_fetch(browser, status: int, body: dict, headers: dict | None = None) -> None:
    """The page's next API call gets this answer instead of the service's (for answers the model won't give); the
    request body it sent is kept in window.stubbedRequest."""
    browser.execute_script(
        """
        const [status, body, headers] = arguments;
        const real = window.fetch;
        window.fetch = async (url, init) => {
          window.fetch = real;
          window.stubbedRequest = init.body;
          const type = {"Content-Type": "application/json"};
          return new Response(JSON.stringify(body), {status, headers: {...type, ...headers}});
        };
        """,
        status,
        body,
        headers or {},
    )


def serve_models_list(browser, models: list[dict] | None) -> str:
    """From the next page load on, the page's GET v1/models gets this list instead of the service's (None: the
    request fails); returns what to pass to forget_models_list."""
    source = (
        f"const listed = {json.dumps(models)};"
        + """
      const real = window.fetch, type = {"Content-Type": "application/json"};
      window.fetch = (url, init) => !String(url).endsWith("/v1/models") ? real(url, init)
        : listed === null ? Promise.reject(new TypeError("Failed to fetch"))
        : Promise.resolve(new Response(JSON.stringify({models: listed}), {headers: type}));
    """
    )
    return browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})["identifier"]


def forget_models_list(browser, identifier: str) -> None:
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})


def option_texts(browser, select_id: str) -> list[str]:
    """A select's options as written (Selenium reads no text from a hidden view's options)."""
    return browser.execute_script(
        "return Array.from(arguments[0].options, o => o.textContent)", browser.find_element(By.ID, select_id)
    )


def test_sentiment_shows_labels_and_tints_the_original_text(browser, service_url, tmp_path):
    open_page(browser, service_url)
    texts = ["a warm, funny and beautifully acted film", "a dull, lifeless and badly written mess"]
    type_into(browser, "sentiment-text", "\n".join(texts))
    browser.find_element(By.ID, "sentiment-submit").click()
    cards = results(browser, ".sentiment-result", 2)
    assert [c.find_element(By.CSS_SELECTOR, ".label-name").text.lower() for c in cards] == ["positive", "negative"]
    for card, text in zip(cards, texts, strict=True):
        box = card.find_element(By.CSS_SELECTOR, ".tokens")
        assert shown_text(box) == text  # the original characters, not word pieces
        colours = tints(box)
        assert len(colours) >= len(text.split()) and all(colours)
        assert len(set(colours)) > 3  # tinted by weight, not one colour
    assert "rollout" in cards[0].find_element(By.CSS_SELECTOR, ".scale-note").text

    token = cards[0].find_elements(By.CSS_SELECTOR, ".tok")[1]
    ActionChains(browser).move_to_element(token).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed()
    assert f"weight {token.get_attribute('data-weight')}" in tooltip.text

    layers = Select(browser.find_element(By.ID, "sentiment-layer"))
    assert [o.text for o in layers.options][2:] == [f"layer {i}" for i in range(1, 7)]
    before = tints(results(browser, ".sentiment-result .tokens")[0])
    layers.select_by_visible_text("layer 6")
    after_box = results(browser, ".sentiment-result .tokens")[0]
    assert tints(after_box) != before
    assert "layer 6" in browser.find_element(By.CSS_SELECTOR, ".sentiment-result .scale-note").text
    layers.select_by_visible_text("average over layers")
    assert "average over layers" in browser.find_element(By.CSS_SELECTOR, ".sentiment-result .scale-note").text

    layers.select_by_value("rollout")
    browser.execute_script("document.activeElement.blur()")  # no focus ring in the picture; a hovered token
    ActionChains(browser).move_to_element(browser.find_elements(By.CSS_SELECTOR, ".sentiment-result .tok")[1]).perform()
    screenshot(browser, tmp_path, "explorer-sentiment.png")
    assert console_errors(browser) == []


def test_long_text_shows_where_truncation_happened(browser, service_url, client):
    text = "a fine and quietly moving film. " * 200
    served = client.post("/v1/sentiment", json={"text": text, "return_attention": True}).json()["results"][0]
    assert served["truncated"]
    read_up_to = max(t["end"] for t in served["attention"]["tokens"] if t["source"] == "text")

    open_page(browser, service_url)
    type_into(browser, "sentiment-text", text.strip())
    browser.find_element(By.ID, "sentiment-submit").click()
    card = results(browser, ".sentiment-result")[0]
    assert "Truncated" in card.find_element(By.CSS_SELECTOR, ".meta.truncated").text
    assert f"up to character {read_up_to}" in card.text
    before_cut = browser.execute_script(
        """
        const box = arguments[0], cut = box.querySelector('.marker.cut');
        let text = '';
        for (const node of box.children) {
          if (node === cut) break;
          if (!node.classList.contains('marker')) text += node.textContent;
        }
        return text;
        """,
        card.find_element(By.CSS_SELECTOR, ".tokens"),
    )
    assert before_cut == text.strip()[:read_up_to]
    assert card.find_elements(By.CSS_SELECTOR, ".unread")
    assert not card.find_elements(By.CSS_SELECTOR, ".unread.tok")  # nothing after the cut is tinted
    assert console_errors(browser) == []


def test_qa_highlights_the_answers_and_tints_the_context(browser, service_url, tmp_path):
    open_page(browser, service_url, "qa")
    type_into(browser, "qa-question", "When was the forest named?")
    type_into(browser, "qa-context", CONTEXT)
    type_into(browser, "qa-top-k", "3")
    browser.find_element(By.ID, "qa-submit").click()
    card = results(browser, ".qa-result")[0]
    buttons = card.find_elements(By.CSS_SELECTOR, ".answer-button")
    assert len(buttons) == 3
    assert buttons[0].text == "“1542”"
    assert "score 0." in card.find_element(By.CSS_SELECTOR, ".answer-item").text
    context_box = card.find_elements(By.CSS_SELECTOR, ".tokens")[1]
    assert shown_text(context_box) == CONTEXT
    best = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.answer.best'), s => s.textContent).join('')", context_box
    )
    assert best == "1542"
    assert card.find_elements(By.CSS_SELECTOR, ".badge")
    colours = tints(context_box)
    assert len(colours) >= len(CONTEXT.split()) and len(set(colours)) > 3
    assert tints(card.find_elements(By.CSS_SELECTOR, ".tokens")[0])  # the question is tinted too
    assert "1 window" in card.find_element(By.CSS_SELECTOR, ".window-note").text
    screenshot(browser, tmp_path, "explorer-qa.png")
    buttons[2].click()  # shows that answer in the context
    focused = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.focused'), s => s.textContent).join('')", context_box
    )
    assert f"“{focused}”" == buttons[2].text
    assert console_errors(browser) == []


def test_qa_over_several_windows_shows_the_window_read(browser, service_url):
    filler = "The museum holds paintings from many centuries and many countries. "
    context = filler * 40 + "The tower was finished in 1889. " + "Visitors come every day of the year. " * 40
    open_page(browser, service_url, "qa")
    type_into(browser, "qa-question", "When was the tower finished?")
    type_into(browser, "qa-context", context)
    browser.find_element(By.ID, "qa-submit").click()
    card = results(browser, ".qa-result")[0]
    assert card.find_element(By.CSS_SELECTOR, ".answer-button").text == "“1889”"
    note = card.find_element(By.CSS_SELECTOR, ".window-note").text
    assert "3 windows" in note
    box = card.find_elements(By.CSS_SELECTOR, ".tokens")[1]
    inside = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('span:not(.marker):not(.badge):not(.outside)'),"
        " s => s.textContent).join('')",
        box,
    )
    start, end = (int(x) for x in note.split("characters ")[1].rstrip(".").split("–"))
    assert 0 < start < context.index("1889") < end < len(context)
    assert inside == context[start:end]
    assert [m.text for m in box.find_elements(By.CSS_SELECTOR, ".marker")] == ["window ⟦", "⟧"]
    assert console_errors(browser) == []


def test_no_answer_is_said_plainly(browser, service_url, client):
    real = client.post("/v1/qa", json={"question": "Why?", "context": CONTEXT, "return_attention": True}).json()
    real["results"][0].update(answers=[], attention=None)  # what the API sends when no span qualifies
    open_page(browser, service_url, "qa")
    stub_next_fetch(browser, 200, real)
    browser.find_element(By.ID, "qa-submit").click()
    card = results(browser, ".qa-result")[0]
    assert card.find_element(By.CSS_SELECTOR, ".no-answer").text.startswith("No answer")
    assert not card.find_elements(By.CSS_SELECTOR, ".answer-button")
    assert console_errors(browser) == []


def test_winning_no_answer_is_said_instead_of_a_span(browser, service_url, client):
    """The checkbox sends handle_impossible_answer; an empty best answer is shown as "no answer", with its score,
    and nothing in the context is marked as the best answer. (The API's answer is played to the page with the empty
    answer first: whether the shipped model's null wins for a given question is the model's business.)"""
    asked = {"question": "What is the boiling point of mercury?", "context": CONTEXT, "top_k": 2,
             "return_attention": True, "handle_impossible_answer": True}  # fmt: skip
    real = client.post("/v1/qa", json=asked).json()
    result = real["results"][0]
    span = next(a for a in result["answers"] if a["text"])
    result.update(answers=[{"text": "", "score": 0.9, "start": 0, "end": 0}, {**span, "score": 0.05}],
                  no_answer_score=0.9)  # fmt: skip
    open_page(browser, service_url, "qa")
    type_into(browser, "qa-question", asked["question"])
    type_into(browser, "qa-top-k", "2")
    browser.find_element(By.ID, "qa-impossible").click()
    stub_next_fetch(browser, 200, real)
    browser.find_element(By.ID, "qa-submit").click()
    card = results(browser, ".qa-result")[0]
    assert json.loads(browser.execute_script("return window.stubbedRequest"))["handle_impossible_answer"] is True
    assert card.find_element(By.CSS_SELECTOR, ".no-answer").text.startswith("No answer in the context (score 0.9000)")
    items = card.find_elements(By.CSS_SELECTOR, ".answer-item")
    assert "no answer in the context · score 0.9000" in items[0].text
    assert not items[0].find_elements(By.CSS_SELECTOR, ".answer-button")
    assert items[1].find_element(By.CSS_SELECTOR, ".answer-button").text == f"“{span['text']}”"
    context_box = card.find_elements(By.CSS_SELECTOR, ".tokens")[1]
    assert shown_text(context_box) == CONTEXT
    assert not context_box.find_elements(By.CSS_SELECTOR, ".best")  # no span is the best answer
    assert [b.text for b in context_box.find_elements(By.CSS_SELECTOR, ".badge")] == ["2"]
    assert "[CLS]" in card.find_element(By.CSS_SELECTOR, ".window-note").text
    assert console_errors(browser) == []


def test_no_answer_checkbox_asks_the_real_service(browser, service_url, client):
    """Ticked, the page shows what the API answers: "no answer" when the null wins, else the span with the
    null score beneath it. Unticked, the option is sent off and no null score is shown."""
    question = "What is the boiling point of mercury?"
    asked = {"question": question, "context": CONTEXT, "top_k": 3, "handle_impossible_answer": True}
    served = client.post("/v1/qa", json=asked).json()["results"][0]
    open_page(browser, service_url, "qa")
    type_into(browser, "qa-question", question)
    type_into(browser, "qa-context", CONTEXT)
    type_into(browser, "qa-top-k", "3")
    browser.find_element(By.ID, "qa-impossible").click()
    browser.find_element(By.ID, "qa-submit").click()
    card = results(browser, ".qa-result")[0]
    score = f"{served['no_answer_score']:.4f}"
    if served["answers"][0]["text"] == "":
        verdict = card.find_element(By.CSS_SELECTOR, ".no-answer").text
        assert verdict.startswith(f"No answer in the context (score {score})")
    else:
        assert card.find_element(By.CSS_SELECTOR, ".answer-button").text == f"“{served['answers'][0]['text']}”"
        assert f"“No answer” scored {score}" in card.find_element(By.CSS_SELECTOR, ".null-note").text
    assert len(card.find_elements(By.CSS_SELECTOR, ".answer-item")) == len(served["answers"])

    browser.find_element(By.ID, "qa-impossible").click()  # off again
    browser.find_element(By.ID, "qa-submit").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: not b.find_elements(By.CSS_SELECTOR, ".null-note, .no-answer"))
    assert results(browser, ".qa-result .answer-button")
    browser.find_element(By.ID, "qa-curl").click()  # the request just sent
    assert '"handle_impossible_answer":false' in browser.find_element(By.ID, "qa-curl-text").text
    assert console_errors(browser) == []


def test_invalid_input_shows_the_error_next_to_the_field(browser, service_url, client):
    refusal = client.post("/v1/sentiment", json={"text": "", "return_attention": True}).json()["error"]
    open_page(browser, service_url)
    browser.find_element(By.ID, "sentiment-text").clear()
    browser.find_element(By.ID, "sentiment-submit").click()
    note = browser.find_element(By.ID, "sentiment-text-error")
    WebDriverWait(browser, WAIT_S).until(lambda b: note.is_displayed())
    assert note.text == refusal["details"][0]["message"]  # the API's own words
    assert browser.find_element(By.ID, "sentiment-text").get_attribute("aria-invalid") == "true"
    alert = browser.find_element(By.ID, "sentiment-error")
    assert "422 empty_input" in alert.text and "request id" in alert.text
    assert not browser.find_elements(By.CSS_SELECTOR, ".sentiment-result")

    browser.find_element(By.ID, "tab-qa").click()
    type_into(browser, "qa-top-k", "99")
    browser.find_element(By.ID, "qa-submit").click()
    note = browser.find_element(By.ID, "qa-top-k-error")
    WebDriverWait(browser, WAIT_S).until(lambda b: note.is_displayed())
    assert "less than or equal to 20" in note.text
    assert not browser.find_element(By.ID, "qa-question-error").is_displayed()
    type_into(browser, "qa-top-k", "2")  # corrected: the note goes away with the next answer
    browser.find_element(By.ID, "qa-submit").click()
    results(browser, ".qa-result")
    assert not note.is_displayed()
    assert console_errors(browser, 422) == []


@pytest.mark.parametrize(
    ("status", "code", "heading"),
    [(429, "rate_limited", "Too many requests"), (503, "overloaded", "busy")],
)
def test_refusals_show_when_to_retry(browser, service_url, status, code, heading):
    open_page(browser, service_url)
    envelope = {"error": {"code": code, "message": "retry later", "details": [], "request_id": "r-1"}}
    stub_next_fetch(browser, status, envelope, {"Retry-After": "7"})
    browser.find_element(By.ID, "sentiment-submit").click()
    alert = browser.find_element(By.ID, "sentiment-error")
    WebDriverWait(browser, WAIT_S).until(lambda b: alert.is_displayed())
    assert heading in alert.text
    assert f"({status} {code})" in alert.text
    assert "Retry after 7 s." in alert.text
    assert console_errors(browser) == []


def test_keyboard_alone_reaches_every_control_and_sends(browser, service_url):
    open_page(browser, service_url)

    def tab_through(presses: int = 80) -> set[str]:
        """Tab from the top of the page; the controls focus landed on (each tagged with a probe number)."""
        browser.execute_script(
            "document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')"
            ".forEach((e, i) => { e.dataset.probe = String(i); }); document.activeElement.blur();"
        )
        reached = set()
        for _ in range(presses):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            reached.add(browser.execute_script("return document.activeElement.dataset.probe || ''"))
        return reached

    def visible_controls() -> dict[str, str]:
        return browser.execute_script(
            "const out = {}; document.querySelectorAll('[data-probe]').forEach(e => {"
            " if (e.offsetParent !== null && !e.closest('dialog') && e.tabIndex >= 0)"
            " out[e.dataset.probe] = e.id || e.className || e.tagName; }); return out;"
        )

    # Send a request with the keyboard alone: Tab to the text, Ctrl+Enter.
    for _ in range(10):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element.get_attribute("id") == "sentiment-text":
            break
    ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    results(browser, ".sentiment-result", 2)
    reached = tab_through()
    missed = {probe: name for probe, name in visible_controls().items() if probe not in reached}
    assert missed == {}
    assert {"sentiment-text", "sentiment-submit", "sentiment-curl", "sentiment-layer", "docs-link"} <= set(
        visible_controls().values()
    )

    # A tinted text is read token by token with the arrow keys.
    box = browser.find_element(By.CSS_SELECTOR, ".sentiment-result .tokens")
    browser.execute_script("arguments[0].focus()", box)
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    assert "weight" in browser.find_element(By.ID, "sentiment-status").text

    # The QA view, reached from the tab list with the arrow key, then answered with Enter on its button.
    browser.find_element(By.ID, "tab-sentiment").send_keys(Keys.ARROW_RIGHT)
    assert browser.switch_to.active_element.get_attribute("id") == "tab-qa"
    assert browser.find_element(By.ID, "view-qa").is_displayed()
    browser.find_element(By.ID, "qa-submit").send_keys(Keys.ENTER)
    results(browser, ".qa-result")
    reached = tab_through()
    missed = {probe: name for probe, name in visible_controls().items() if probe not in reached}
    assert missed == {}
    assert {"qa-question", "qa-context", "qa-top-k", "qa-impossible", "qa-submit", "qa-curl", "qa-layer",
            "answer-button"} <= set(visible_controls().values())  # fmt: skip
    assert console_errors(browser) == []


def test_copy_as_curl_repeats_the_request(browser, service_url):
    open_page(browser, service_url)
    type_into(browser, "sentiment-text", "it's not bad at all")  # a quote the shell command must survive
    browser.find_element(By.ID, "sentiment-submit").click()
    label = results(browser, ".sentiment-result")[0].find_element(By.CSS_SELECTOR, ".label-name").text.lower()
    browser.find_element(By.ID, "sentiment-curl").click()
    command = browser.find_element(By.ID, "sentiment-curl-text").text
    assert command.startswith(f"curl -s '{service_url}/v1/sentiment'")
    replayed = json.loads(subprocess.run(["bash", "-c", command], capture_output=True, check=True, timeout=60).stdout)
    assert replayed["results"][0]["label"] == label
    assert replayed["results"][0]["attention"]["tokens"][1]["token"] == "it"
    assert console_errors(browser) == []


def test_api_key_is_asked_for_once_and_kept_for_the_session(browser, service_url):
    tight = f"{service_url}/tight"  # the app that requires TIGHT_KEY; the page calls the API beside it
    assert httpx.get(f"{tight}/explore").status_code == 200  # the page itself needs no key
    open_page(browser, tight)
    type_into(browser, "sentiment-text", "great")
    browser.find_element(By.ID, "sentiment-submit").click()
    dialog = browser.find_element(By.ID, "key-dialog")
    WebDriverWait(browser, WAIT_S).until(lambda b: dialog.get_attribute("open") is not None)
    assert browser.switch_to.active_element.get_attribute("id") == "key-input"
    browser.switch_to.active_element.send_keys(TIGHT_KEY + Keys.ENTER)
    assert results(browser, ".sentiment-result")[0].find_element(By.CSS_SELECTOR, ".label-name").text
    assert browser.execute_script("return sessionStorage.getItem('attention-serve.api-key')") == TIGHT_KEY
    assert browser.execute_script("return localStorage.length") == 0

    browser.find_element(By.ID, "sentiment-curl").click()  # the command names the key, it does not hold it
    command = browser.find_element(By.ID, "sentiment-curl-text").text
    assert '-H "X-API-Key: $ATTENTION_SERVE_API_KEY"' in command and TIGHT_KEY not in command
    assert f"'{tight}/v1/sentiment'" in command

    browser.refresh()  # same tab: the stored key is sent, nothing is asked
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.documentElement.dataset.ready"))
    browser.find_element(By.ID, "sentiment-submit").click()
    results(browser, ".sentiment-result")
    assert browser.find_element(By.ID, "key-dialog").get_attribute("open") is None

    # A refused key is asked for once more; refused again, the page says so and forgets it.
    browser.execute_script("sessionStorage.setItem('attention-serve.api-key', 'stale')")
    browser.find_element(By.ID, "sentiment-submit").click()
    dialog = browser.find_element(By.ID, "key-dialog")
    WebDriverWait(browser, WAIT_S).until(lambda b: dialog.get_attribute("open") is not None)
    assert "refused" in browser.find_element(By.ID, "key-reason").text
    browser.switch_to.active_element.send_keys("also-wrong" + Keys.ENTER)
    alert = browser.find_element(By.ID, "sentiment-error")
    WebDriverWait(browser, WAIT_S).until(lambda b: alert.is_displayed())
    assert "401 unauthorized" in alert.text
    assert dialog.get_attribute("open") is None
    assert browser.execute_script("return sessionStorage.getItem('attention-serve.api-key')") is None
    assert console_errors(browser, 401) == []


def test_zoo_lists_every_model_and_the_chosen_one_answers(browser, service_url, client, zoo, tmp_path):
    listed = client.get("/zoo/v1/models").json()["models"]
    open_page(browser, f"{service_url}/zoo")
    for task in ("sentiment", "qa"):
        own = [m for m in listed if m["task"] == task]
        assert [m["id"] for m in own] == list(zoo[task])  # every zoo model of the task, the default first
        assert option_texts(browser, f"{task}-model") == [f"{m['id']} — {m['family']}" for m in own]
        assert browser.find_element(By.ID, f"{task}-model").get_attribute("value") == own[0]["id"]
    assert browser.find_element(By.CSS_SELECTOR, "label[for='sentiment-model']").text == "Model"

    chosen = "roberta"
    assert chosen in zoo["sentiment"] and next(iter(zoo["sentiment"])) != chosen  # not the default
    Select(browser.find_element(By.ID, "sentiment-model")).select_by_value(chosen)
    type_into(browser, "sentiment-text", "a gorgeous, moving film")
    browser.find_element(By.ID, "sentiment-submit").click()
    card = results(browser, ".sentiment-result")[0]
    assert browser.find_element(By.ID, "sentiment-status").text.startswith(f"{chosen} ")  # the model that answered
    labels = list(LABELS.values())  # "Negative", "neutral", "POSITIVE": shown as the checkpoint names them
    assert [s.text for s in card.find_elements(By.CSS_SELECTOR, ".probabilities .label")] == labels
    assert card.find_element(By.CSS_SELECTOR, ".label-name").text in labels
    assert not card.find_elements(By.CSS_SELECTOR, ".multi-label-note")  # softmax: one distribution
    browser.find_element(By.ID, "sentiment-curl").click()
    assert f'"model":"{chosen}"' in browser.find_element(By.ID, "sentiment-curl-text").text
    browser.execute_script("document.activeElement.blur()")
    screenshot(browser, tmp_path, "explorer-zoo.png")
    assert console_errors(browser) == []


def test_one_model_per_task_shows_no_chooser(browser, service_url):
    open_page(browser, service_url)
    for task in ("sentiment", "qa"):
        assert option_texts(browser, f"{task}-model") == []
        assert not browser.find_element(By.ID, f"{task}-model-choice").is_displayed()
    browser.find_element(By.ID, "sentiment-curl").click()
    assert '"model"' not in browser.find_element(By.ID, "sentiment-curl-text").text  # the default answers
    assert console_errors(browser) == []


def test_without_the_models_list_the_defaults_answer(browser, service_url, zoo):
    script = serve_models_list(browser, None)
    try:
        open_page(browser, f"{service_url}/zoo")
    finally:
        forget_models_list(browser, script)
    assert not browser.find_element(By.ID, "sentiment-model-choice").is_displayed()
    browser.find_element(By.ID, "sentiment-submit").click()
    card = results(browser, ".sentiment-result", 2)[0]
    assert browser.find_element(By.ID, "sentiment-status").text.startswith(f"{next(iter(zoo['sentiment']))} ")
    assert [s.text for s in card.find_elements(By.CSS_SELECTOR, ".probabilities .label")] == list(LABELS.values())
    assert console_errors(browser) == []


def test_multi_label_scores_are_said_to_be_independent(browser, service_url, client):
    listed = client.get("/zoo/v1/models").json()["models"]
    script = serve_models_list(browser, [{**m, "multi_label": m["task"] == "sentiment"} for m in listed])
    try:
        open_page(browser, f"{service_url}/zoo")
    finally:
        forget_models_list(browser, script)
    assert "each label scored on its own" in browser.find_element(By.ID, "sentiment-model-note").text
    browser.find_element(By.ID, "sentiment-submit").click()
    card = results(browser, ".sentiment-result", 2)[0]
    assert "scored on its own" in card.find_element(By.CSS_SELECTOR, ".multi-label-note").text
    assert console_errors(browser) == []


def test_page_headers_on_the_running_service(client):
    page = client.get("/explore")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/explore/explorer.js").headers["content-type"] == "text/javascript; charset=utf-8"
    missing = client.get("/explore/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"  # the service's own envelope
    assert "/explore" not in client.get("/openapi.json").json()["paths"]
