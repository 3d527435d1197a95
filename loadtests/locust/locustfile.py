"""Locust users for attention-serve: sentiment, QA, and a mixed profile whose request mix is configurable.

    locust -f loadtests/locust/locustfile.py --host http://127.0.0.1:8000 --web-host 127.0.0.1        # web UI
    locust -f loadtests/locust/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -r 5 -t 60s  # headless
    locust -f loadtests/locust/locustfile.py QAUser ...                                               # one profile
    python -m loadtests.locust --help                      # headless runner: CSV + HTML report + SLO exit code

User classes (name them on the command line; with none named, only MixedUser runs):
  SentimentUser  POST /v1/sentiment: single texts, batches of 2-8, long texts, with attention
  QAUser         POST /v1/qa: single pairs, multi-window contexts, batches of 2-4, with attention
  MixedUser      both, in the ratio --sentiment-weight : --qa-weight (read live, so editable in the web UI)

Every request is named by its endpoint ("/v1/sentiment", "/v1/qa") and every task is tagged (sentiment, qa,
single, batch, long, attention) for --tags / --exclude-tags. A response counts as a success only when it is
a 200 whose body has the right shape (loadtests/locust/checks.py). A 503 with Retry-After makes that user wait.

Bounds, whichever way Locust is started: the host must be a loopback address unless --allow-remote is given,
a test stops after --max-requests requests and after --max-run-time (also in the web UI).
"""

from __future__ import annotations

import csv
import logging
import os
import random
import sys
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, TaskSet, events, tag
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `loadtests` importable however Locust is started
from loadtests.locust.checks import answer_matches, check_qa, check_sentiment, error_code  # noqa: E402
from loadtests.locust.corpus import QA_ITEMS, SENTIMENT_TEXTS, QAItem  # noqa: E402
from loadtests.locust.guard import DEFAULT_MAX_REQUESTS, DEFAULT_MAX_RUN_TIME_S, loopback_problem, parse_duration  # noqa: E402

logger = logging.getLogger("loadtests")

SENTIMENT = "/v1/sentiment"
QA = "/v1/qa"
SHORT_TEXTS = [t for t in SENTIMENT_TEXTS if len(t) < 400]
LONG_TEXTS = [t for t in SENTIMENT_TEXTS if len(t) >= 400]
SHORT_CONTEXTS = [q for q in QA_ITEMS if len(q.context) < 1800]
LONG_CONTEXTS = [q for q in QA_ITEMS if len(q.context) >= 1800]
MAX_RETRY_AFTER_S = 5.0


def _api_key_headers() -> dict[str, str]:
    """The service's API key, when it has one: ATTENTION_SERVE_API_KEY, or the file ATTENTION_SERVE_API_KEY_FILE."""
    key = os.environ.get("ATTENTION_SERVE_API_KEY", "")
    if not key and (path := os.environ.get("ATTENTION_SERVE_API_KEY_FILE")):
        key = Path(path).read_text().strip()
    return {"X-API-Key": key} if key else {}


AUTH = _api_key_headers()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument(
        "--sentiment-weight",
        type=int,
        default=1,
        env_var="LOCUST_SENTIMENT_WEIGHT",
        help="MixedUser: relative share of sentiment requests (default 1)",
    )
    parser.add_argument(
        "--qa-weight",
        type=int,
        default=1,
        env_var="LOCUST_QA_WEIGHT",
        help="MixedUser: relative share of QA requests (default 1)",
    )
    parser.add_argument(
        "--min-wait",
        type=float,
        default=0.1,
        env_var="LOCUST_MIN_WAIT",
        help="seconds a user waits between requests, at least (default 0.1)",
    )
    parser.add_argument(
        "--max-wait", type=float, default=0.5, env_var="LOCUST_MAX_WAIT", help="... and at most (default 0.5)"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=60.0,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="seconds before a request counts as failed (default 60)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        env_var="LOCUST_MAX_REQUESTS",
        help=f"stop the test after this many requests (default {DEFAULT_MAX_REQUESTS})",
    )
    parser.add_argument(
        "--max-run-time",
        default=f"{DEFAULT_MAX_RUN_TIME_S}s",
        env_var="LOCUST_MAX_RUN_TIME",
        help="stop any test after this long, even in the web UI (default 30m)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        default=False,
        env_var="LOCUST_ALLOW_REMOTE",
        include_in_web_ui=False,
        help="allow a host that is not a loopback address",
    )


# ---------------------------------------------------------------------------------------------------------
# Requests and checks
# ---------------------------------------------------------------------------------------------------------


def _post(owner, name: str, payload: dict, check) -> dict | None:
    """POST, then judge the response: only a 200 that passes `check(body)` is a success."""
    with owner.client.post(name, json=payload, name=name, headers=AUTH, catch_response=True) as r:  # User or TaskSet
        if r.status_code != 200:
            if not r.status_code:
                r.failure(f"no response: {type(getattr(r, 'error', None)).__name__}")
                return None
            r.failure(f"HTTP {r.status_code} {error_code(_json(r))}")
            retry_after = (r.headers or {}).get("Retry-After")
            if r.status_code == 503 and retry_after:
                _back_off(retry_after)
            return None
        body = _json(r)
        if reason := check(body):
            r.failure(f"bad body: {reason}")
            return None
        r.success()
        return body


def _json(response):
    try:
        return response.json()
    except Exception:  # any decoding error: the body is simply not JSON
        return None


def _back_off(retry_after: str) -> None:
    try:
        time.sleep(min(float(retry_after), MAX_RETRY_AFTER_S))
    except ValueError:
        pass  # an HTTP date, which this service never sends


def _sentiment(owner, texts: list[str], attention: bool = False) -> None:
    payload = {"text": texts[0] if len(texts) == 1 and random.random() < 0.5 else texts, "return_attention": attention}
    _post(owner, SENTIMENT, payload, lambda body: check_sentiment(body, len(texts), attention))


def _qa(owner, items: list[QAItem], attention: bool = False) -> None:
    top_k = random.choice([1, 1, 1, 2, 3])
    if len(items) == 1 and random.random() < 0.7:
        payload = {"question": items[0].question, "context": items[0].context}
    else:
        payload = {"inputs": [{"question": q.question, "context": q.context} for q in items]}
    payload.update(top_k=top_k, return_attention=attention)
    body = _post(owner, QA, payload, lambda b: check_qa(b, [q.context for q in items], top_k, attention))
    if body is not None:
        ANSWERS.record(items, body)


class _AnswerTally:
    """How often the best answer agrees with the corpus: reported at the end, never a failure (that is the
    model's accuracy, which the eval command measures properly)."""

    def __init__(self) -> None:
        self.asked = self.agreed = 0

    def record(self, items: list[QAItem], body: dict) -> None:
        for item, result in zip(items, body["results"], strict=True):
            self.asked += 1
            self.agreed += answer_matches(result["answers"][0]["text"], item.answer)


ANSWERS = _AnswerTally()


@tag("sentiment", "single")
def sentiment_single(owner) -> None:
    _sentiment(owner, [random.choice(SHORT_TEXTS)])


@tag("sentiment", "batch")
def sentiment_batch(owner) -> None:
    _sentiment(owner, random.sample(SENTIMENT_TEXTS, random.randint(2, 8)))


@tag("sentiment", "long")
def sentiment_long(owner) -> None:
    _sentiment(owner, [random.choice(LONG_TEXTS)])


@tag("sentiment", "attention")
def sentiment_attention(owner) -> None:
    _sentiment(owner, [random.choice(SENTIMENT_TEXTS)], attention=True)


@tag("qa", "single")
def qa_single(owner) -> None:
    _qa(owner, [random.choice(SHORT_CONTEXTS)])


@tag("qa", "long")
def qa_long(owner) -> None:
    _qa(owner, [random.choice(LONG_CONTEXTS)])


@tag("qa", "batch")
def qa_batch(owner) -> None:
    _qa(owner, random.sample(QA_ITEMS, random.randint(2, 4)))


@tag("qa", "attention")
def qa_attention(owner) -> None:
    _qa(owner, [random.choice(QA_ITEMS)], attention=True)


SENTIMENT_TASKS = {sentiment_single: 6, sentiment_batch: 3, sentiment_long: 2, sentiment_attention: 1}
QA_TASKS = {qa_single: 6, qa_long: 3, qa_batch: 2, qa_attention: 1}


# ---------------------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------------------


class ServiceUser(FastHttpUser):
    abstract = True
    connection_timeout = 10.0
    network_timeout = 60.0  # --request-timeout

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        low, high = (options.min_wait, options.max_wait) if options else (0.1, 0.5)
        return random.uniform(low, max(low, high))

    def on_start(self) -> None:
        if problem := _host_problem(self.environment, self.host):
            logger.error("refusing to send load: %s", problem)
            raise StopUser()


class SentimentUser(ServiceUser):
    tasks = SENTIMENT_TASKS


class QAUser(ServiceUser):
    tasks = QA_TASKS


class _MixedTasks(TaskSet):
    """Picks the endpoint by the live --sentiment-weight : --qa-weight, then a task of that endpoint by its
    own weight. Works on the tag-filtered task list, so --tags still applies."""

    tasks = {**SENTIMENT_TASKS, **QA_TASKS}

    def get_next_task(self):
        options = self.user.environment.parsed_options
        weights = (options.sentiment_weight, options.qa_weight) if options else (1, 1)
        pools = [
            ([t for t in self.tasks if endpoint in getattr(t, "locust_tag_set", ())], max(weight, 0))
            for endpoint, weight in zip(("sentiment", "qa"), weights, strict=True)
        ]
        pools = [(tasks, weight) for tasks, weight in pools if tasks]
        if not pools:
            return super().get_next_task()  # Locust's own error: no tasks left after --tags / --exclude-tags
        if all(weight == 0 for _, weight in pools):
            logger.error("MixedUser: the weights of all the endpoints it has tasks for are 0")
            raise StopUser()
        tasks = random.choices([p[0] for p in pools], weights=[p[1] for p in pools])[0]
        return random.choice(tasks)


class MixedUser(ServiceUser):
    tasks = [_MixedTasks]


# ---------------------------------------------------------------------------------------------------------
# Bounds: loopback only, a request budget, a time limit
# ---------------------------------------------------------------------------------------------------------


def _host_problem(environment, host: str | None) -> str | None:
    options = environment.parsed_options
    if options is not None and options.allow_remote:
        return None
    if not host:
        return "no host given (--host)"
    if problem := loopback_problem(host):
        return f"{problem}; load goes to loopback addresses only (--allow-remote to override)"
    return None


class _Bounds:
    def __init__(self) -> None:
        self.environment = None
        self.requests = 0
        self.max_requests = DEFAULT_MAX_REQUESTS
        self.generation = 0  # each test start; a stale time limit must not stop a later test
        self.stopping = False

    def stop(self, environment, reason: str, exit_code: int | None = None) -> None:
        if self.stopping or environment.runner is None:
            return
        self.stopping = True
        logger.warning("stopping the test: %s", reason)
        if exit_code is not None:
            environment.process_exit_code = exit_code
        headless = environment.parsed_options is not None and environment.parsed_options.headless
        gevent.spawn(environment.runner.quit if headless else environment.runner.stop)


BOUNDS = _Bounds()


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    BOUNDS.environment = environment
    options = environment.parsed_options
    if options is None:
        return
    ServiceUser.network_timeout = options.request_timeout  # read when each user's HTTP client is made
    if not options.user_classes and MixedUser in environment.user_classes:
        environment.user_classes[:] = [MixedUser]  # no class named: the mixed profile, not all three at once


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master enforces the bounds
    options = environment.parsed_options
    BOUNDS.requests, BOUNDS.stopping = 0, False
    BOUNDS.generation += 1
    BOUNDS.max_requests = options.max_requests if options is not None else DEFAULT_MAX_REQUESTS
    if problem := _host_problem(environment, environment.host):
        BOUNDS.stop(environment, f"refusing to send load: {problem}", exit_code=3)
        return
    max_run_time = parse_duration(options.max_run_time) if options is not None else DEFAULT_MAX_RUN_TIME_S
    generation = BOUNDS.generation

    def time_up() -> None:
        if BOUNDS.generation == generation:
            BOUNDS.stop(environment, f"--max-run-time of {max_run_time} s reached")

    gevent.spawn_later(max_run_time, time_up)


@events.request.add_listener
def _on_request(**_kwargs) -> None:
    BOUNDS.requests += 1
    if BOUNDS.requests >= BOUNDS.max_requests and BOUNDS.environment is not None:
        BOUNDS.stop(BOUNDS.environment, f"--max-requests of {BOUNDS.max_requests} reached")


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if ANSWERS.asked:
        logger.info("QA best answers agreeing with the corpus: %d of %d", ANSWERS.agreed, ANSWERS.asked)
    prefix = environment.parsed_options.csv_prefix if environment.parsed_options else None
    if prefix and not isinstance(environment.runner, WorkerRunner):
        # Locust rewrites these once a second and not at the end, so they can miss the last second's requests
        # (and failures): write the final numbers, which the runner's SLO verdict is based on.
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
        for suffix, write in (("stats", writer.requests_csv), ("failures", writer.failures_csv)):
            with open(f"{prefix}_{suffix}.csv", "w", newline="") as f:
                write(csv.writer(f))
