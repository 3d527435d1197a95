"""docker-compose.yml, checked without a Docker engine (none runs here).

The file must match the Compose Specification (its JSON schema, as vendored by check-jsonschema); every file it
mounts or builds from must exist; the start-up order must hold (what is waited on as healthy has a health check);
and it must agree with the files it ties together: the Dockerfile's stages and paths, Prometheus' scrape targets,
Grafana's provisioning.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfiles import REPO, repo_dockerfile, stages

COMPOSE_FILE = REPO / "docker-compose.yml"
RAY_NODES = ("ray-head", "ray-worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema", path=os.path.dirname(sys.executable)) or shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is missing: pip install -e '.[test]'"
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=60
    )


def test_compose_file_matches_the_compose_specification():
    result = _check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_specification_check_catches_a_misspelt_key(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    assert _check_jsonschema(broken).returncode != 0


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of a service's short-syntax volumes."""
    result = []
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        result.append((source, target, mode == ["ro"]))
    return result


def _bind_mounts(service: dict) -> dict[str, Path]:
    """container path -> host path, for mounts of files from this repository."""
    return {target: (REPO / source).resolve() for source, target, _ in _mounts(service) if source.startswith(".")}


def test_every_mounted_file_exists(compose):
    mounted = 0
    for name, service in compose["services"].items():
        for target, host in _bind_mounts(service).items():
            assert host.exists(), f"{name} mounts {host.relative_to(REPO)} at {target}, which does not exist"
            mounted += 1
    assert mounted >= 5  # the head's serve config, Prometheus' and Grafana's two, Locust's load tests


def test_every_build_uses_a_stage_of_the_dockerfile(compose):
    dockerfile_stages = stages(repo_dockerfile())
    built = {}
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), name
            assert build["target"] in dockerfile_stages, f"{name} builds target {build['target']!r}: no such stage"
            built.setdefault(service["image"], set()).add(build["target"])
    # One image name per target, so services sharing an image also share what is in it.
    assert all(len(targets) == 1 for targets in built.values()), built
    assert compose["services"]["ray-head"]["build"]["target"] == "service"
    assert compose["services"]["ray-worker"]["image"] == compose["services"]["ray-head"]["image"]


def test_locust_reads_the_mounted_locustfile(compose):
    locust = compose["services"]["locust"]
    command = locust["command"]
    locustfile = command[command.index("-f") + 1]
    mounts = _bind_mounts(locust)
    (mount_target,) = [t for t in mounts if locustfile.startswith(t + "/")]
    host_file = mounts[mount_target] / os.path.relpath(locustfile, mount_target)
    assert host_file == REPO / "loadtests" / "locust" / "locustfile.py"
    assert command[command.index("--host") + 1] == "http://ray-head:8000"
    assert host_file.is_file(), f"docker-compose.yml runs {locustfile}, but {host_file.relative_to(REPO)} is missing"
    # The locustfile loads only loopback hosts unless told otherwise; from its container, ray-head is not one.
    assert "--allow-remote" in host_file.read_text()
    assert "--allow-remote" in command


def _has_health_check(service: dict) -> bool:
    if service.get("healthcheck", {}).get("disable"):
        return False
    if "test" in service.get("healthcheck", {}):
        return True
    build = service.get("build")
    return bool(build and stages(repo_dockerfile())[build["target"]].last("HEALTHCHECK"))


def test_start_up_order(compose):
    services = compose["services"]
    graph = {name: set(service.get("depends_on", {})) for name, service in services.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"depends_on has a cycle: {exc}")
    assert order.index("ray-head") < order.index("ray-worker")
    conditions = {
        (name, dependency): spec["condition"]
        for name, service in services.items()
        for dependency, spec in service.get("depends_on", {}).items()
    }
    assert conditions[("ray-worker", "ray-head")] == "service_healthy"
    assert conditions[("locust", "ray-head")] == "service_healthy"
    assert conditions[("grafana", "prometheus")] == "service_healthy"
    for (name, dependency), condition in conditions.items():
        if condition == "service_healthy":
            assert _has_health_check(services[dependency]), f"{name} waits for {dependency} to be healthy: no check"
    for name, service in services.items():
        assert _has_health_check(service), f"{name} has no health check"


def test_head_health_check_is_the_fronts_healthz(compose):
    test = " ".join(compose["services"]["ray-head"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in test  # the front application, at / (test_docker.py checks the route)


def _container_ports(service: dict) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1]) for port in service.get("ports", [])}


def test_published_ports(compose):
    services = compose["services"]
    assert _container_ports(services["ray-head"]) == {8000, 8265, 8080}
    assert _container_ports(services["prometheus"]) == {9090}
    assert _container_ports(services["grafana"]) == {3000}
    assert _container_ports(services["locust"]) == {8089}
    # `--scale ray-worker=N` needs workers without fixed host ports or container names.
    assert "ports" not in services["ray-worker"] and "container_name" not in services["ray-worker"]
    # HAProxy forwards to the replicas' own HTTP servers (30000-31000) over the project network: never published.
    published = {port for service in services.values() for port in _container_ports(service)}
    assert not {port for port in published if 30000 <= port <= 31000} and not published & {8404, 9101}
    assert services["ray-worker"]["deploy"]["replicas"] == 0


def test_prometheus_scrapes_the_head_and_every_worker(compose):
    services = compose["services"]
    prometheus_dir = _bind_mounts(services["prometheus"])["/etc/prometheus"]
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "ray"]
    head_port = services["ray-head"]["environment"]["RAY_METRICS_EXPORT_PORT"]
    worker_port = services["ray-worker"]["environment"]["RAY_METRICS_EXPORT_PORT"]
    assert f"ray-head:{head_port}" in {t for static in job["static_configs"] for t in static["targets"]}
    (workers,) = [sd for sd in job["dns_sd_configs"] if "ray-worker" in sd["names"]]
    assert str(workers["port"]) == worker_port
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_grafana_provisioning_matches_its_mounts(compose):
    services = compose["services"]
    mounts = _bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "attention-serve.yml").read_text())["providers"]
    dashboards_host = mounts[provider["options"]["path"]]
    assert (dashboards_host / "attention-serve.json").is_file()
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and 9090 in _container_ports(services["prometheus"])
    assert f'"uid": "{datasource["uid"]}"' in (dashboards_host / "attention-serve.json").read_text()


def test_ray_nodes_share_one_auth_token(compose):
    services = compose["services"]
    modes = {services[name]["environment"]["RAY_AUTH_MODE"] for name in RAY_NODES}
    assert len(modes) == 1, f"head and workers must agree on RAY_AUTH_MODE: {modes}"
    if modes == {"token"}:
        # The image's user keeps the token in ~/.ray; the head writes it, the workers only read it.
        assert any("mkdir /home/app/.ray" in args for args in stages(repo_dockerfile())["base"].all("RUN"))
        head = {target: (source, ro) for source, target, ro in _mounts(services["ray-head"])}
        worker = {target: (source, ro) for source, target, ro in _mounts(services["ray-worker"])}
        assert head["/home/app/.ray"] == ("ray-auth", False)
        assert worker["/home/app/.ray"] == ("ray-auth", True)
        assert "ray-auth" in compose["volumes"]


def test_head_deploys_the_mounted_serve_config(compose):
    env = " ".join(stages(repo_dockerfile())["service"].all("ENV"))
    serve_config_in_image = env.split("SERVE_CONFIG=")[1].split()[0]
    mounts = _bind_mounts(compose["services"]["ray-head"])
    assert mounts[serve_config_in_image] == REPO / "deploy" / "serve_config.yaml"


def test_api_key_is_on_and_comes_from_a_secret(compose):
    secret = compose["secrets"]["api_key"]
    assert secret == {"environment": "ATTENTION_SERVE_API_KEY"}  # from the operator's environment, not this file
    # Every Ray node: Serve may build an application on a worker, and that build reads the key from this file.
    for name in ("ray-head", "ray-worker", "locust"):
        service = compose["services"][name]
        assert "api_key" in service["secrets"]
        assert service["environment"]["ATTENTION_SERVE_API_KEY_FILE"] == "/run/secrets/api_key"
        assert "ATTENTION_SERVE_API_KEY" not in service["environment"]  # no key in a container's environment
