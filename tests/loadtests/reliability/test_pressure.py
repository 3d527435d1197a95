"""The reliability runs' load generator reads what the service says about each answer's time."""

import asyncio

import pytest

from loadtests.reliability.overload import Report
from loadtests.reliability.pressure import RawClient, Sent, server_timing


def test_server_timing_reads_every_duration_and_skips_the_rest():
    header = 'tokenize;dur=0.4, queue;dur=12.5, inference;desc="model";dur=30, total;dur=44.1, cache, odd;dur=x'
    assert server_timing(header) == {"tokenize": 0.4, "queue": 12.5, "inference": 30.0, "total": 44.1}
    assert server_timing("") == {}


def test_raw_client_joins_repeated_headers():
    """The routes and the edge each send a Server-Timing header; both parts must reach the report."""

    async def scenario() -> dict[str, str]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nServer-Timing: queue;dur=3.0\r\nserver-timing: total;dur=9.5\r\n"
                b"Content-Length: 2\r\n\r\n{}"
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RawClient(f"http://127.0.0.1:{port}", 1)
        try:
            status, headers, body = await client.post("/v1/sentiment", b"{}")
        finally:
            await client.close()
            server.close()
        assert (status, body) == (200, b"{}")
        return headers

    headers = asyncio.run(scenario())
    assert server_timing(headers["server-timing"]) == {"queue": 3.0, "total": 9.5}


def test_overload_report_splits_accepted_time_into_server_parts_and_the_rest():
    sent = [
        Sent(0.0, 0.100, 200, timing_ms={"tokenize": 1.0, "queue": 40.0, "inference": 50.0, "total": 92.0}),
        Sent(0.1, 0.300, 200, timing_ms={"tokenize": 2.0, "queue": 200.0, "inference": 60.0, "total": 263.0}),
        Sent(0.2, 0.010, 503, retry_after="1", timing_ms={"total": 1.0}),
    ]
    parts = Report(10.0, 100.0, 300.0, 300.0, sent, 0.5, 30).server_timing_p99()
    assert parts["queue"] == 200.0 and parts["inference"] == 60.0 and parts["replica_total"] == 263.0
    assert parts["outside_replica"] == pytest.approx(37.0)  # 300 ms seen by the client, 263 in the replica
