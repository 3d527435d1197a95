"""Closed-loop HTTP load with wrk (Debian's package), so the load generator is not what limits a row.

wrk is C and event-driven: one thread keeps 64 connections busy for a fraction of a millisecond of CPU per
request, where a Python client on the same 2 cores spends several. A Lua script cycles through a file of
distinct JSON bodies (one per line), counts non-2xx answers, and prints one JSON line at the end with wrk's
own latency percentiles. The CPU wrk used is read back per request, so every table shows what the client cost.
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.system_packages import ensure_debian_binary

MARKER = "WRK_JSON "

# Globals, not locals: done() runs in its own Lua state and reads each thread's counter with thread:get().
LUA = """
bodies = {}
next_body = 0
non2xx = 0
threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\\n',
    "MARKER", summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, bad,
    latency:percentile(50), latency:percentile(99)))
end
""".replace('"MARKER"', json.dumps(MARKER))


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests over its duration, wrk's latency percentiles, what went wrong."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non2xx: int
    client_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx

    @property
    def client_cpu_ms_per_request(self) -> float:
        return 1000 * self.client_cpu_s / self.requests if self.requests else float("nan")


def ensure_wrk() -> str:
    """wrk's path, installed from Debian on first use (as the tests install Prometheus)."""
    return ensure_debian_binary("wrk", "wrk")


def write_bodies(bodies: Iterable[dict], path: Path) -> int:
    """One compact JSON body per line (the Lua script reads lines); returns how many were written."""
    lines = [json.dumps(body, ensure_ascii=False, separators=(",", ":")) for body in bodies]
    if not lines:
        raise ValueError("no bodies to send")
    if any("\n" in line for line in lines):
        raise ValueError("a JSON body must fit on one line")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def parse_output(stdout: str, client_cpu_s: float = 0.0) -> WrkResult:
    """The JSON line the Lua `done()` printed, among wrk's own report."""
    line = next((line for line in stdout.splitlines() if line.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")
    data = json.loads(line.removeprefix(MARKER))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        socket_errors=data["socket_errors"],
        non2xx=data["non2xx"],
        client_cpu_s=client_cpu_s,
    )


def children_cpu_s() -> float:
    """CPU (user + system) of every child this process has waited for: wrk's share is the delta around it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, bodies_file: Path, connections: int, seconds: float, timeout_s: float = 60) -> WrkResult:
    """`connections` closed-loop connections on one wrk thread for `seconds`, posting the file's bodies in turn.

    wrk's default 2 s timeout would count a slow answer under overload as a socket error, hence `timeout_s`.
    """
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script = Path(tmp) / "bodies.lua"
        script.write_text(LUA)
        command = [
            ensure_wrk(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
            url,
            "--",
            str(bodies_file),
        ]
        cpu = children_cpu_s()
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
        cpu = children_cpu_s() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-2000:]}")
    return parse_output(done.stdout, cpu)
