"""Traffic for the reliability runs: every request checkable, every answer recorded.

Each request carries its own sentiment text of a distinct length, and the service says how many tokens it
read (`results[0].tokens`), so an answer that belongs to another request shows up as a wrong token count (QA
traffic: its own context's window count, and answers that are its context's text; see common/texts.py).
Open-loop traffic (a fixed arrival rate, whatever the service does) is what overload needs; closed-loop users
(send, wait, send again) are what a fault run needs. Both return one `Sent` per request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loadtests.common.texts import Contexts, Texts

Traffic = Texts | Contexts


@dataclass
class Sent:
    sent_at: float  # seconds since the run started
    seconds: float
    status: int  # 0: no HTTP answer (connection refused or reset)
    code: str | None = None
    retry_after: str | None = None
    correct: bool | None = None  # 200s only: the answer is this request's own
    timing_ms: dict[str, float] = field(default_factory=dict)  # the answer's Server-Timing, by name

    @property
    def done_at(self) -> float:
        return self.sent_at + self.seconds


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    The load generator shares a 2-core machine with the service; httpx costs ~2.5 ms of CPU a request, enough
    at 80 requests/s to starve the generator itself and turn its own delays into "latency". This costs a
    fraction of that. It speaks just what the service answers: Content-Length bodies, keep-alive or close.
    """

    def __init__(self, url: str, connections: int, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.prefix = parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/")
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status (0 when the connection failed), lower-case headers and body."""
        async with self.slots:
            stream = self.idle.pop() if self.idle else None
            try:
                if stream is None:
                    stream = await asyncio.open_connection(self.host, self.port)
                reader, writer = stream
                writer.write(
                    f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                    f"{self.extra}Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                status = int(head[0].split(" ", 2)[1])
                headers: dict[str, str] = {}
                for name, value in (line.split(": ", 1) for line in head[1:] if ": " in line):
                    name = name.lower()  # a repeated header is one comma-joined list (RFC 9110 5.3)
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                content = await reader.readexactly(int(headers.get("content-length", "0")))
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                if stream is not None:
                    stream[1].close()
                return 0, {}, b""
            if headers.get("connection") == "close":
                writer.close()
            else:
                self.idle.append(stream)
            return status, headers, content

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def one_request(client: RawClient, traffic: Traffic, i: int, started: float) -> Sent:
    body = json.dumps(traffic.body(i)).encode()
    sent_at = time.monotonic() - started
    status, headers, content = await client.post(traffic.path, body)
    result = Sent(sent_at, time.monotonic() - started - sent_at, status, retry_after=headers.get("retry-after"))
    result.timing_ms = server_timing(headers.get("server-timing", ""))
    if status == 200:
        result.correct = traffic.correct(i, json.loads(content)["results"][0])
    elif headers.get("content-type", "").startswith("application/json"):
        result.code = json.loads(content).get("error", {}).get("code")
    return result


async def open_loop(
    url: str, rps: float, seconds: float, texts: Traffic, first: int = 0, headers: dict[str, str] | None = None
) -> list[Sent]:
    """Start `rps` requests a second for `seconds`, each on its own, and wait for all of them to finish."""
    client = RawClient(url, 2000, headers)
    started = time.monotonic()
    tasks = []
    for n in itertools.count():
        due = n / rps
        if due >= seconds:
            break
        await asyncio.sleep(max(0.0, due - (time.monotonic() - started)))
        tasks.append(asyncio.create_task(one_request(client, texts, first + n, started)))
    sent = list(await asyncio.gather(*tasks))
    await client.close()
    return sent


@dataclass
class ClosedLoop:
    """`users` clients that each send, wait for the answer, and send again, until `stop` is set."""

    url: str
    users: int
    texts: Traffic
    headers: dict[str, str] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[Sent] = field(default_factory=list)

    async def run(self, started: float) -> list[Sent]:
        counter = itertools.count()
        client = RawClient(self.url, self.users, self.headers)

        async def user() -> None:
            while not self.stop.is_set():
                self.sent.append(await one_request(client, self.texts, next(counter), started))

        await asyncio.gather(*(user() for _ in range(self.users)))
        await client.close()
        return self.sent


def server_timing(header: str) -> dict[str, float]:
    """`tokenize;dur=1.2, queue;dur=3.4` as {"tokenize": 1.2, "queue": 3.4}; entries without a duration are left out."""
    timing = {}
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key == "dur":
                try:
                    timing[name] = float(value)
                except ValueError:
                    pass
    return timing
