"""Hostile input against a running service: every case must get its documented answer, and memory must stay put.

    python -m loadtests.reliability.hostile --url http://127.0.0.1:8000 [--rounds 3] [--slow-body-s 15]

Sends each case of CASES (huge texts and bodies, deep nesting, NaN/Infinity, invalid UTF-8, null bytes, lone
surrogates, a 100 KB header), then a slow-loris body and a crowd of idle connections, `--rounds` times. The
resident memory of the app's replicas and of Serve's proxy is read before the second round and after the
last (the first round is warm-up: allocators keep what they grew to once), so a leak shows as growth between
them. Processes are found by their Ray titles, so run it on the machine that runs the service.

Prints one line per case and the memory table; exits 1 if any case got another answer than its own.
tests/service/test_hostile.py runs the same cases.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from loadtests.reliability.replicas import MB, replica_memory
from service.app import application_names

JSON = {"Content-Type": "application/json"}


def _ten_megabytes() -> Iterator[bytes]:
    """A 10 MB body sent in chunks without a Content-Length, so only counting the bytes can stop it."""
    yield b'{"text": "'
    for _ in range(10 * 1024):
        yield b"a" * 1024
    yield b'"}'


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes | Callable[[], Iterator[bytes]]
    status: int
    code: str | None  # the error envelope's code; None for a 200 or an answer from Serve's proxy itself
    headers: dict[str, str] | None = None


def _json(**fields) -> bytes:
    return json.dumps(fields).encode()


CASES = [
    Case("100k-char text", "/v1/sentiment", _json(text=("a fine film " * 8334)[:100_000]), 200, None),
    Case("100,001-char text", "/v1/sentiment", _json(text="a" * 100_001), 422, "input_too_long"),
    Case("100k-char context", "/v1/qa", _json(question="why?", context="word " * 20_000), 422, "context_too_long"),
    Case("10 MB body, declared", "/v1/sentiment", _json(text="a" * 10 * MB), 413, "payload_too_large"),
    Case("10 MB body, chunked", "/v1/sentiment", _ten_megabytes, 413, "payload_too_large"),
    Case("a million items", "/v1/sentiment", _json(text=["a"] * 1_000_000), 422, "invalid_request"),
    Case(
        "nesting 100,000 deep",
        "/v1/sentiment",
        b'{"text": ' + b"[" * 100_000 + b'"x"' + b"]" * 100_000 + b"}",
        400,
        "malformed_json",
    ),
    Case("NaN", "/v1/qa", b'{"question": "a?", "context": "b", "top_k": NaN}', 422, "invalid_request"),
    Case(
        "Infinity", "/v1/qa", b'{"question": "a?", "context": "b", "max_answer_len": Infinity}', 422, "invalid_request"
    ),
    Case("-Infinity", "/v1/qa", b'{"question": "a?", "context": "b", "doc_stride": -Infinity}', 422, "invalid_request"),
    Case("1e400", "/v1/qa", b'{"question": "a?", "context": "b", "top_k": 1e400}', 422, "invalid_request"),
    Case(
        "5,000-digit integer",
        "/v1/qa",
        b'{"question": "a?", "context": "b", "top_k": %s}' % (b"9" * 5000),
        400,
        "malformed_json",
    ),
    Case("invalid UTF-8", "/v1/sentiment", b'{"text": "\xff\xfe\xfd"}', 400, "malformed_json"),
    Case("raw null byte", "/v1/sentiment", b'{"text": "a\x00b"}', 400, "malformed_json"),
    Case("escaped null bytes", "/v1/sentiment", b'{"text": "good\\u0000 film\\u0000"}', 200, None),
    Case("only null bytes", "/v1/sentiment", b'{"text": "\\u0000\\u0000"}', 422, "empty_input"),
    Case("lone surrogate", "/v1/sentiment", b'{"text": "bad \\ud800 text"}', 422, "invalid_text"),
    Case("lone surrogate, question", "/v1/qa", b'{"question": "\\udfff?", "context": "b"}', 422, "invalid_text"),
    Case("12 KB header", "/v1/sentiment", b'{"text": "fine"}', 200, None, {"X-Padding": "a" * 12_000}),
    # HAProxy's request buffer (16 KB) refuses it with a plain 400 before any replica sees it; Serve's Python
    # proxy (--proxy python) lets it through to a 200.
    Case("100 KB header", "/v1/sentiment", b'{"text": "fine"}', 400, None, {"X-Padding": "a" * 100_000}),
]


@dataclass(frozen=True)
class Outcome:
    name: str
    status: int
    code: str | None
    seconds: float
    expected: tuple[int, str | None]

    @property
    def ok(self) -> bool:
        return (self.status, self.code) == self.expected


def send(client: httpx.Client, case: Case, prefix: str = "") -> Outcome:
    body = case.body() if callable(case.body) else case.body
    started = time.monotonic()
    reply = client.post(prefix + case.path, content=body, headers={**JSON, **(case.headers or {})})
    seconds = time.monotonic() - started
    code = None
    if reply.status_code != 200 and reply.headers.get("content-type", "").startswith("application/json"):
        code = reply.json()["error"]["code"]
    return Outcome(case.name, reply.status_code, code, seconds, (case.status, case.code))


def slow_body(url: str, send_for_s: float, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """Declare a 1,000-byte body and send one byte a second: the answer's status and when it came."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=send_for_s + 30)
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = f"POST {parts.path}/v1/sentiment HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}{extra}Content-Length: 1000\r\n\r\n{{".encode())
    started = time.monotonic()
    sock.setblocking(False)
    reply = b""
    try:
        while time.monotonic() - started < send_for_s:
            try:
                reply = sock.recv(4096)
                break  # an answer, or b"" when the server closed the connection
            except BlockingIOError:
                pass
            try:
                sock.send(b" ")
            except OSError:
                pass  # closed for writing; the answer may still be readable
            time.sleep(1)
    finally:
        sock.close()
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - started


def crowd(url: str, connections: int, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """Hold `connections` idle sockets (half a request line each) open, then time one normal request."""
    parts = urlsplit(url)
    idle = []
    try:
        for _ in range(connections):
            sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
            sock.sendall(b"POST /v1/sentiment HT")
            idle.append(sock)
        started = time.monotonic()
        reply = httpx.post(f"{url}/v1/sentiment", json={"text": "still answering"}, headers=headers, timeout=60)
        return reply.status_code, time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--prefix", default="", help="the service's path_prefix (names its applications)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow-body-s", type=float, default=15, help="how long the slow-loris client trickles")
    parser.add_argument("--connections", type=int, default=500)
    options = parser.parse_args()

    failures = 0
    before: dict[str, int] = {}
    with httpx.Client(base_url=options.url, timeout=120) as client:
        for round_number in range(1, options.rounds + 1):
            if round_number == 2:
                before = replica_memory(application_names(options.prefix).values())
            for case in CASES:
                outcome = send(client, case)
                failures += not outcome.ok
                if round_number == 1:
                    got = f"{outcome.status} {outcome.code or ''}".strip()
                    print(f"{'ok ' if outcome.ok else 'BAD'} {case.name:28} {got:24} {outcome.seconds * 1000:8.0f} ms")
    status, seconds = slow_body(options.url, options.slow_body_s)
    print(f"slow body (1 byte/s): {status or 'no answer'} after {seconds:.1f} s")
    status, seconds = crowd(options.url, options.connections)
    failures += status != 200
    print(f"{options.connections} idle connections open: a normal request got {status} in {seconds * 1000:.0f} ms")
    after = replica_memory(application_names(options.prefix).values())
    print(f"\nresident memory, before round 2 → after round {options.rounds}:")
    for name, rss in sorted(after.items()):
        if name in before:
            print(f"  {name:36} {before[name] / MB:7.1f} MB → {rss / MB:7.1f} MB ({(rss - before[name]) / MB:+.1f})")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
