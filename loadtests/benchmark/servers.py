"""The servers the benchmark compares, each started as its own process tree and stopped until none of it is left.

Every server runs alone while it is measured: a Ray cluster left behind by the previous server would take CPU
from the next one on a 2-core machine, so `stop` waits until every process the server started has exited, and
only then does the next one start. Each server gets its own session (process group), which is how its
processes are found again: by PID, never by name, so other people's Ray clusters on the machine are untouched.

    service   `attention-serve run --port P --metrics-port M`, exactly as a user starts it; ready at GET /readyz
    naive     loadtests/benchmark/naive_server.py under uvicorn: the transformers pipelines, one request at a time
    tutorial  loadtests/benchmark/tutorial_app.py: Ray Serve's batching tutorial (one deployment, @serve.batch)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# A Ray server must start its own cluster: without an address, ray.init() joins the cluster a `ray start` on
# this machine last announced, which would be someone else's, sharing its CPUs with the measurement.
OWN_RAY_CLUSTER = {"RAY_ADDRESS": "local"}


@dataclass(frozen=True)
class Server:
    """How to start one server and how to tell it is ready to answer."""

    name: str
    command: list[str]
    port: int
    ready_path: str  # GET until 200, or POST `ready_body` when it is set
    ready_body: dict | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 300

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Running:
    server: Server
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def service(port: int, metrics_port: int) -> Server:
    """The service as a user starts it (README: `attention-serve run`)."""
    command = [str(BIN / "attention-serve"), "run", "--port", str(port), "--metrics-port", str(metrics_port)]
    return Server("service", command, port, "/readyz", env=OWN_RAY_CLUSTER)


def naive(port: int, checkpoints: dict[str, Path], threads: int) -> Server:
    """FastAPI + uvicorn + transformers' pipelines on the same weights (exported as plain HF checkpoints)."""
    env = {f"{task.upper()}_MODEL_DIR": str(path) for task, path in checkpoints.items()} | {"THREADS": str(threads)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "loadtests.benchmark.naive_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    return Server("naive", command, port, "/v1/sentiment", {"text": "ready?"}, env)


def tutorial(port: int, checkpoint: Path, threads: int) -> Server:
    """Ray Serve's batching tutorial done plainly, in a local Ray cluster of its own, on the naive server's threads."""
    module = "loadtests.benchmark.tutorial_app"
    command = [sys.executable, "-m", module, "--port", str(port), "--model-dir", str(checkpoint)]
    command += ["--threads", str(threads)]
    return Server("tutorial", command, port, "/v1/sentiment", {"text": "ready?"}, OWN_RAY_CLUSTER)


def export_checkpoints(tasks: tuple[str, ...], out: Path) -> dict[str, Path]:
    """The shipped models as plain Hugging Face checkpoints, which is what transformers' pipeline loads."""
    from service.engine.layout import default_base_dir, read_json
    from service.engine.weights import export_hf_checkpoint, load_task_model
    from service.settings import default_model_dir

    base = default_base_dir()
    dirs = {}
    for task in tasks:
        dirs[task] = out / task
        export_hf_checkpoint(
            load_task_model(default_model_dir(task), task), read_json(base / "config.json"), dirs[task]
        )
        for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (base / name).exists():
                shutil.copy(base / name, dirs[task] / name)
    return dirs


def start(server: Server) -> Running:
    """Start the server in a session of its own and wait until it answers; its output goes to a temp file."""
    log = Path(tempfile.mkstemp(prefix=f"bench-{server.name}-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command,
            cwd=ROOT,
            env={**os.environ, **server.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(server, process, log)
    try:
        wait_ready(running)
    except BaseException:
        stop(running)
        raise
    return running


def wait_ready(running: Running) -> None:
    server = running.server
    deadline = time.monotonic() + server.ready_timeout_s
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {running.process.returncode}:\n{running.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if server.ready_body is None:
                reply = httpx.get(server.url + server.ready_path, timeout=5)
            else:
                reply = httpx.post(server.url + server.ready_path, json=server.ready_body, timeout=30)
            if reply.status_code == 200:
                return
        time.sleep(1)
    raise TimeoutError(f"{server.name} not ready after {server.ready_timeout_s:.0f} s:\n{running.log_tail()}")


def session_processes(leader: int) -> list[psutil.Process]:
    """Every live process of the session the server was started in, plus its descendants that left it."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(process.pid) == leader:
                found[process.pid] = process
    with contextlib.suppress(psutil.Error):
        found.update((p.pid, p) for p in psutil.Process(leader).children(recursive=True))
    return list(found.values())


def stop(running: Running, grace_s: float = 60) -> None:
    """SIGINT (what Ctrl-C sends; the service and Ray shut down cleanly on it), then wait until every process
    the server started is gone; whatever outlives `grace_s` is killed, by PID."""
    leader = running.process.pid
    processes = session_processes(leader)
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        running.process.wait(timeout=grace_s)
    processes += [p for p in session_processes(leader) if p.pid not in {q.pid for q in processes}]
    _, alive = psutil.wait_procs(processes, timeout=max(5.0, grace_s / 4))
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
    running.process.wait(timeout=10)
    running.log.unlink(missing_ok=True)


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Running]:
    """The server up for the duration of the block, and nothing of it left running after."""
    running = start(server)
    try:
        yield running
    except BaseException:
        print(f"--- {server.name}'s output, last lines ---\n{running.log_tail()}", file=sys.stderr)
        raise
    finally:
        stop(running)
