"""deploy/kubernetes/rayservice.yaml, checked without a Kubernetes cluster (none runs here).

The manifest is validated against KubeRay's RayService CRD schema (tests/deploy/schemas/rayservice_v1.yaml, a
trimmed copy, see its header) with the pod templates checked against Kubernetes' own core/v1 PodSpec schema (the
strict JSON schemas of the kubernetes-validate package). Unknown fields are errors, as with `kubectl apply`'s
default strict field validation. The embedded Serve config must be deploy/serve_config.yaml's but for the production
replica counts listed here (PRODUCTION), deploy what `attention-serve run` deploys, and fit the worker pods; the
manifest must agree with the image (user, ports) and with the pinned Ray.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.resources
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from service.app import FRONT_NUM_CPUS, application_names, serve_applications
from service.settings import BatchSettings, Settings
from service.tasks import TASKS
from tests.deploy.dockerfiles import REPO, repo_dockerfile, stages

MANIFEST = REPO / "deploy" / "kubernetes" / "rayservice.yaml"
SCHEMA = Path(__file__).parent / "schemas" / "rayservice_v1.yaml"
# The Kubernetes API version whose core/v1 schemas the pod templates are checked against; the vendored CRD was
# generated from k8s.io/api 1.34 (it has its PodCertificate volume source and FileKeySelector).
KUBERNETES_VERSION = "1.34.0"
KUBERNETES_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
OBJECT_META = {"$ref": f"{KUBERNETES_DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
# Where serveConfigV2 departs from deploy/serve_config.yaml, and nowhere else: application -> deployment -> fields.
# Each task ingress holds the requests it serves, so production runs two at least (one may die or be replaced while
# the other serves) and may grow to four.
PRODUCTION = {
    "attention-serve-sentiment": {"SentimentIngress": {"autoscaling_config": {"min_replicas": 2, "max_replicas": 4}}},
    "attention-serve-qa": {"QAIngress": {"autoscaling_config": {"min_replicas": 2, "max_replicas": 4}}},
}


def _strict(schema):
    """Structural-schema objects reject unknown fields, as the API server does under strict field validation."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = json.loads((schemas / f"v{KUBERNETES_VERSION}-local-strict" / "_definitions.json").read_text())
    assert definitions["$id"] == KUBERNETES_DEFINITIONS
    registry = Resource.from_contents(definitions) @ Registry()
    schema = _strict(yaml.safe_load(SCHEMA.read_text()))
    schema["properties"]["metadata"] = OBJECT_META
    return Draft202012Validator(schema, registry=registry)


@pytest.fixture
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def _errors(validator: Draft202012Validator, document: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


def test_manifest_is_one_rayservice(manifest):
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    assert len(documents) == 1
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")


def test_rayservice_matches_the_crd_and_pod_schemas(validator, manifest):
    errors = _errors(validator, manifest)
    assert not errors, "\n".join(errors)


def _worker(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]


def _head_container(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]


MISTAKES = {
    "misspelt worker group field": lambda d: _worker(d).update(minReplica=1),
    "rayStartParams value not a string": lambda d: _worker(d)["rayStartParams"].update({"num-cpus": 2}),
    "no worker maxReplicas": lambda d: _worker(d).pop("maxReplicas"),
    "unknown auth mode": lambda d: d["spec"]["rayClusterConfig"]["authOptions"].update(mode="tokens"),
    "misspelt container field": lambda d: _head_container(d).update(imagePullPolicyy="Always"),
    "container port as a string": lambda d: _head_container(d)["ports"][0].update(containerPort="6379"),
    "misspelt pod spec field": lambda d: _worker(d)["template"]["spec"].update(securityContexts={}),
    "bad metadata": lambda d: d["metadata"].update(labels=["not", "a", "map"]),
    "serveConfigV2 not a string": lambda d: d["spec"].update(serveConfigV2={"applications": []}),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_schema_check_catches(validator, manifest, mistake):
    broken = copy.deepcopy(manifest)
    MISTAKES[mistake](broken)
    assert _errors(validator, broken), f"{mistake} went through"


def _merged(base: dict, changes: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        merged[key] = _merged(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def _with_production_changes(config: dict) -> dict:
    config = copy.deepcopy(config)
    for app in config["applications"]:
        for deployment in app.get("deployments", []):
            deployment.update(_merged(deployment, PRODUCTION.get(app["name"], {}).get(deployment["name"], {})))
    return config


def _serve_config(manifest: dict) -> dict:
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def test_serve_config_is_deploy_serve_config_at_production_scale(manifest):
    from ray.serve.schema import ServeDeploySchema

    embedded = _serve_config(manifest)
    expected = _with_production_changes(yaml.safe_load((REPO / "deploy" / "serve_config.yaml").read_text()))
    assert expected != yaml.safe_load((REPO / "deploy" / "serve_config.yaml").read_text()), "PRODUCTION changes nothing"
    assert embedded == expected, (
        "serveConfigV2 differs from deploy/serve_config.yaml beyond PRODUCTION: paste the file in again, "
        "then the production replica counts"
    )
    ServeDeploySchema.model_validate(embedded)


def test_serve_config_deploys_what_attention_serve_run_deploys(manifest):
    """The three applications, with the names, routes and import paths of service.app, and one set of valid args."""
    applications = _serve_config(manifest)["applications"]
    args = applications[0]["args"]
    assert all(app["args"] == args for app in applications), "the three applications must take the same args"
    settings = Settings(**args)
    ours = [(a["name"], a["route_prefix"], a["import_path"]) for a in applications]
    built = [(a["name"], a["route_prefix"], a["import_path"]) for a in serve_applications(args)]
    assert ours == built
    by_app = {app["name"]: app for app in applications}
    for task, deployment_name in ((t, spec.deployment) for t, spec in TASKS.items()):
        (deployment,) = by_app[application_names(settings.path_prefix)[task]]["deployments"]
        assert deployment["name"] == deployment_name
        batching = BatchSettings.model_validate(deployment["user_config"])
        assert deployment["max_ongoing_requests"] >= batching.max_batch_size, deployment_name
        # An ingress replica holds its own in-flight requests: with one, its death drops every request in flight.
        bounds = deployment["autoscaling_config"]
        assert 2 <= bounds["min_replicas"] <= bounds["max_replicas"], deployment_name


def test_ray_version_is_the_pinned_one(manifest):
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == importlib.metadata.version("ray")


def _ports(container: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_ports_match_the_serve_config_and_the_metrics_scrape(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    serve_port = _serve_config(manifest)["http_options"]["port"]
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (ray_job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "ray"]
    metrics_port = int(ray_job["static_configs"][0]["targets"][0].rsplit(":", 1)[1])
    head = _ports(_head_container(manifest))
    assert head["serve"] == serve_port and head["dashboard"] == 8265 and head["gcs-server"] == 6379
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        (container,) = group["template"]["spec"]["containers"]
        assert int(group["rayStartParams"]["metrics-export-port"]) == metrics_port
        assert _ports(container)["metrics"] == metrics_port
        # KubeRay's readiness probe of RayService workers checks the Serve proxy on the `serve` port.
        assert _ports(container)["serve"] == serve_port


def test_ray_start_params_are_options_of_this_ray(manifest, ray_start_options):
    cluster = manifest["spec"]["rayClusterConfig"]
    params = set(cluster["headGroupSpec"]["rayStartParams"])
    for group in cluster["workerGroupSpecs"]:
        params.update(group["rayStartParams"])
    # KubeRay turns each key into `--key=value` on the `ray start` it runs.
    unknown = {f"--{key}" for key in params} - ray_start_options
    assert not unknown, f"not options of this Ray's `ray start`: {unknown}"


def test_autoscaling_and_placement(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    task_deployments = [d for app in _serve_config(manifest)["applications"] for d in app.get("deployments", [])]
    replica_cpus = [d["ray_actor_options"]["num_cpus"] for d in task_deployments]
    assert replica_cpus
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "replicas belong on the workers"
    # What must be placed at all times: the front and every task ingress at min_replicas.
    minimum = FRONT_NUM_CPUS + sum(
        d["autoscaling_config"]["min_replicas"] * d["ray_actor_options"]["num_cpus"] for d in task_deployments
    )
    for group in cluster["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], "no worker, no replica"
        (container,) = group["template"]["spec"]["containers"]
        cpus = float(container["resources"]["limits"]["cpu"])
        assert max(replica_cpus) <= cpus, "a task replica does not fit on a worker pod"
        assert minimum <= cpus * group["minReplicas"], f"the minimum ({minimum} CPUs) does not fit the idle workers"
        maximum = FRONT_NUM_CPUS + sum(
            d["autoscaling_config"]["max_replicas"] * d["ray_actor_options"]["num_cpus"] for d in task_deployments
        )
        assert maximum <= cpus * group["maxReplicas"], "Serve may scale past what Ray's autoscaler can add"


def test_upgrades_are_blue_green(manifest):
    # The strategy the manifest's comments describe; KubeRay's controller accepts NewCluster,
    # NewClusterWithIncrementalUpgrade and None (the CRD itself leaves the field a free string).
    assert manifest["spec"]["upgradeStrategy"]["type"] == "NewCluster"
    assert manifest["spec"]["rayClusterConfig"]["authOptions"]["mode"] == "token"


def test_pods_run_the_image_as_its_non_root_user(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    service_stage = stages(repo_dockerfile())["service"]
    uid = int(service_stage.last("USER").split(":")[0])
    images = set()
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        images.update(c["image"] for c in pod["containers"])
    assert len(images) == 1, f"head and workers must run the same image: {images}"


def test_every_ray_pod_reads_the_api_key_from_the_secret(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["api-key"]["secret"]["secretName"] == "attention-serve-api-key"
        (container,) = template["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "api-key")
        assert env["ATTENTION_SERVE_API_KEY_FILE"]["value"] == f"{mount['mountPath']}/api-key"
        assert mount["readOnly"] is True
        assert "ATTENTION_SERVE_API_KEY" not in env
