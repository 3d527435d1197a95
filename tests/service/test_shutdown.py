"""`attention-serve run` stopped with SIGTERM, as `docker stop` or an orchestrator stops it.

The process must exit 0 well within docker-compose.yml's stop_grace_period (after which Docker kills it, and Ray's
processes with it, mid-request), answer a request that was in flight when the signal came, free its HTTP port and
leave none of the Ray processes it started behind.

Starts its own `attention-serve run` (its own Ray) on free ports: a minute or two to start on a small machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Seconds from SIGTERM to exit: compose's stop_grace_period is 30 s; a stop must leave a margin on a loaded machine.
STOP_BOUND_S = 20.0
START_TIMEOUT_S = 400.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` again (as servers do, despite connections of the old one in
    TIME_WAIT): nothing listens on it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _processes_with(marker: str) -> list[str]:
    """Processes whose environment carries `marker`: the service and every Ray process it started (they inherit
    it), whatever they were reparented to."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {command[:160]}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


class Service:
    """`attention-serve run` in a subprocess on free ports, its output in a file; every process it starts carries a
    marker in its environment, so what outlives it can be found (and, after a failure, ended)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, metrics_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.marker = f"ATTENTION_SERVE_SHUTDOWN_TEST={uuid.uuid4().hex}"
        name, value = self.marker.split("=")
        env = {**os.environ, name: value}
        env.pop("RAY_ADDRESS", None)  # its own Ray, never one already running here
        # HAProxy's metrics and stats listeners have fixed ports; the suite's own service already holds them.
        env["RAY_SERVE_HAPROXY_METRICS_PORT"], env["RAY_SERVE_HAPROXY_STATS_PORT"] = (
            str(_free_port()),
            str(_free_port()),
        )
        self.log_file = tmp_path / "run.log"
        self._log = self.log_file.open("w")
        command = ["run", "--port", str(self.port), "--metrics-port", str(metrics_port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *command],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            if ready():
                return
            time.sleep(0.5)
        pytest.fail(f"attention-serve run: never {what} (exit {self.process.poll()}):\n{self.log()[-4000:]}")

    def is_ready(self) -> bool:
        """/readyz answers 200 and the command has said it is up."""
        try:
            ready = httpx.get(f"{self.url}/readyz", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False
        return ready and "Ctrl-C stops it" in self.log()

    def terminate(self) -> tuple[int, float, float, list[str]]:
        """SIGTERM; then its exit code, the seconds until it exited and until its port was free, what outlived it."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        stopped_s = time.monotonic() - began
        while not _port_is_free(self.port) and time.monotonic() - began < 60:
            time.sleep(0.1)
        freed_s = time.monotonic() - began
        time.sleep(1)  # a killed process may take a moment to leave /proc
        return code, stopped_s, freed_s, _processes_with(self.marker)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        # Whatever it left behind (a failed run), so the next tests get the machine back.
        for line in _processes_with(self.marker):
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except OSError:
                pass
        self._log.close()


@pytest.fixture
def service(tmp_path):
    grace_period = yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-ray-node"]["stop_grace_period"]
    assert grace_period == "30s" and STOP_BOUND_S < 30
    started = Service(tmp_path)
    yield started
    started.close()


def _check_stop(service: Service, code: int, stopped_s: float, freed_s: float, left: list[str]) -> None:
    assert code == 0, service.log()[-4000:]
    assert stopped_s < STOP_BOUND_S, f"stopped in {stopped_s:.1f} s\n{service.log()[-4000:]}"
    assert freed_s < STOP_BOUND_S, f"port {service.port} still taken {freed_s:.1f} s after SIGTERM; running: {left}"
    assert left == [], "processes the service started outlived it"


def test_sigterm_drains_and_stops_within_the_grace_period(service):
    service.wait_for(service.is_ready, "became ready")

    # A request on the model when the signal comes: a clean stop answers it before the replicas go.
    answer: dict = {}
    texts = [f"review {i}: " + "a slow, thoughtful and quietly moving film " * 40 for i in range(64)]

    def ask() -> None:
        try:
            answer["status"] = httpx.post(f"{service.url}/v1/sentiment", json={"text": texts}, timeout=60).status_code
        except httpx.HTTPError as exc:
            answer["error"] = repr(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.3)
    code, stopped_s, freed_s, left = service.terminate()
    asking.join(timeout=60)
    # For the record (pytest -s): what a stop takes on this machine.
    print(f"SIGTERM to exit {stopped_s:.1f} s, port free after {freed_s:.1f} s; in flight: {answer}")  # noqa: T201
    _check_stop(service, code, stopped_s, freed_s, left)
    assert answer.get("status") == 200, f"the request in flight at SIGTERM got {answer}"


def test_sigterm_while_starting_stops_it_cleanly_too(service):
    """Before the service is up (a container stopped while it loads): Ray's own handler would abort the process and
    leave Ray's processes, the proxy among them, holding the port."""
    service.wait_for(lambda: "Started Serve" in service.log(), "started Serve")
    code, stopped_s, freed_s, left = service.terminate()
    print(f"SIGTERM while starting: exit {stopped_s:.1f} s, port free after {freed_s:.1f} s")  # noqa: T201
    _check_stop(service, code, stopped_s, freed_s, left)
    assert "stopping before it was up" in service.log()
