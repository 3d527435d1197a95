"""Faults under load: kill a task's ingress replica while users keep sending.

    python -m loadtests.reliability.faults --url http://127.0.0.1:8000 [--users 8] [--kill sentiment]

Closed-loop users send sentiment requests the whole time; every 200 is checked to be its own request's
answer. Each fault SIGKILLs one replica process (found by its Ray title, so run this on the service's
machine), then waits until Serve has started a new process and requests have succeeded for 5 s straight.
Per fault it reports the requests that failed (and whether each failure was a clean JSON envelope), when
the last one happened, and when the replacement process appeared. Exits 1 on a wrong answer or an unclean
failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

from loadtests.common.texts import Texts
from loadtests.reliability.pressure import ClosedLoop, Sent
from loadtests.reliability.replicas import serve_processes


def replica_pids(app: str, deployment: str) -> set[int]:
    return {process.pid for name, process in serve_processes(app) if name == deployment}


@dataclass
class Fault:
    deployment: str
    killed_pid: int
    killed_at: float  # seconds into the run
    replaced_at: float | None = None
    settled_at: float | None = None  # a new process runs and answers have been all 200 for a while

    def summary(self, sent: list[Sent]) -> dict:
        """What the fault cost: failed requests, the longest wait, and when answers flowed normally again.

        Recovered: a request sent after the kill was answered, and no request failed after that moment.
        """
        window = [s for s in sent if s.done_at >= self.killed_at and s.sent_at <= (self.settled_at or 1e9)]
        failed = [s for s in window if s.status != 200]
        first_ok = min((s.done_at for s in window if s.sent_at >= self.killed_at and s.status == 200), default=None)
        last_failure = max((s.done_at for s in failed), default=self.killed_at)
        recovered = None if first_ok is None else max(first_ok, last_failure) - self.killed_at
        return {
            "deployment": self.deployment,
            "requests_during_fault": len(window),
            "failed": len(failed),
            "failed_by_status": {f"{s.status} {s.code or '(not our envelope)'}": n for s, n in _group(failed)},
            "unclean": sum(1 for s in failed if s.code is None),
            "wrong_answers": sum(1 for s in window if s.correct is False),
            "longest_wait_s": round(max((s.seconds for s in window), default=0), 2),
            "new_process_after_s": None if self.replaced_at is None else round(self.replaced_at - self.killed_at, 2),
            "recovered_after_s": None if recovered is None else round(recovered, 2),
        }


def _group(failed: list[Sent]) -> list[tuple[Sent, int]]:
    counts = Counter((s.status, s.code) for s in failed)
    first = {}
    for s in failed:
        first.setdefault((s.status, s.code), s)
    return [(first[key], n) for key, n in counts.items()]


async def inject(load: ClosedLoop, target: tuple[str, str], started: float, settle_s: float = 5) -> Fault:
    """Kill one replica of `target` (application, deployment); return once a new one runs and requests
    succeeded for `settle_s`."""
    app, deployment = target
    victims = replica_pids(app, deployment)
    if not victims:
        raise SystemExit(f"no running replica of {app}:{deployment} on this machine")
    pid = min(victims)
    fault = Fault(deployment, pid, time.monotonic() - started)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = time.monotonic() - started
        if fault.replaced_at is None and replica_pids(app, deployment) - victims:
            fault.replaced_at = now
        recent = [s for s in load.sent if s.done_at >= now - settle_s]
        if fault.replaced_at is not None and now - fault.killed_at > settle_s and recent:
            if all(s.status == 200 for s in recent):
                fault.settled_at = now
                return fault
    return fault


def targets(tasks: list[str], path_prefix: str = "") -> list[tuple[str, str]]:
    """(application, deployment) of each task's ingress in the service mounted at `path_prefix`."""
    from service.app import application_names
    from service.tasks import TASKS

    names = application_names(path_prefix)
    return [(names[task], TASKS[task].deployment) for task in tasks]  # type: ignore[index]


async def run(
    url: str, users: int, victims: list[tuple[str, str]], warmup_s: float = 10, headers=None
) -> tuple[list[Fault], list[Sent]]:
    load = ClosedLoop(url, users, Texts(), headers)
    started = time.monotonic()
    runner = asyncio.create_task(load.run(started))
    await asyncio.sleep(warmup_s)
    faults = []
    for target in victims:
        faults.append(await inject(load, target, started))
        await asyncio.sleep(5)
    load.stop.set()
    return faults, await runner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--prefix", default="", help="the service's path_prefix (names its applications)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--kill", nargs="+", default=["sentiment"], choices=["sentiment", "qa"])
    options = parser.parse_args()
    faults, sent = asyncio.run(run(options.url, options.users, targets(options.kill, options.prefix)))
    summaries = [fault.summary(sent) for fault in faults]
    total = {
        "requests": len(sent),
        "statuses": dict(Counter(str(s.status) for s in sent)),
        "wrong_answers": sum(1 for s in sent if s.correct is False),
        "faults": summaries,
    }
    print(json.dumps(total, indent=2))
    bad = total["wrong_answers"] + sum(f["unclean"] for f in summaries)
    bad += sum(1 for f in summaries if f["recovered_after_s"] is None)  # never answered normally again
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
