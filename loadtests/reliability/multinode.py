"""A real multi-node Ray cluster on this machine: lose a worker node under load, count what it costs.

    python -m loadtests.reliability.multinode [--seconds-after-loss 30] [--json report.json]

Starts a head node and two worker nodes (Ray's own processes, via ray.cluster_utils.Cluster), deploys the service
with the two sentiment ingress replicas and the QA one on the workers (a custom `model_node` resource; Serve
spreads replicas over nodes) and HAProxy and the front on the head, drives closed-loop sentiment traffic, then
kills one worker node. It reports how many requests failed during the loss and with which status, whether any
answer was wrong (every 200 is compared with the engine's own answer for that text), and how long until every model
replica ran again, all on the surviving nodes.
Exit status 0 when no answer was wrong, at most one request per user failed (the ones in flight on the lost node:
HAProxy answers them with a plain 5xx or drops the connection, our envelope cannot reach them), and recovery took
< 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

RECOVERY_GOAL_S = 30


def texts(n: int) -> list[str]:
    moods = ["wonderful", "dreadful", "charming", "tedious", "brilliant", "clumsy", "moving", "bland"]
    return [f"review {i}: the film is {moods[i % 8]} and the cast is {moods[(i // 8) % 8]}" for i in range(n)]


def app_config(port: int) -> dict:
    """The service's three applications: the task replicas on the workers, the front on the head."""
    from service.app import serve_applications
    from service.tasks import TASKS

    batching = {"max_batch_size": 16, "batch_wait_timeout_s": 0.005, "token_budget": 8192, "precision": "fp32"}
    on_workers = {"num_cpus": 0.2, "resources": {"model_node": 0.3}}
    replicas = {"sentiment": 2, "qa": 1}
    applications = serve_applications({"sentiment": {"threads": 1}, "qa": {"threads": 1}})
    for app in applications:
        task = next((t for t in TASKS if app["name"].endswith(f"-{t}")), None)
        if task is None:  # the front stays on the head, beside HAProxy: losing a worker must not take it along
            on_head = {"num_cpus": 0.1, "resources": {"ingress_node": 0.1}}
            app["deployments"] = [{"name": "Front", "ray_actor_options": on_head}]
        else:
            app["deployments"] = [
                {
                    "name": TASKS[task].deployment,
                    "num_replicas": replicas[task],
                    "autoscaling_config": None,
                    "ray_actor_options": on_workers,
                    "user_config": batching,
                }
            ]
    http = {"host": "127.0.0.1", "port": port}
    return {"proxy_location": "HeadOnly", "http_options": http, "applications": applications}


def replica_nodes(deployment: str) -> list[str]:
    """Node ids of the live replicas of a deployment (from Ray's actor table; no dashboard needed)."""
    import ray

    return [
        actor["Address"]["NodeID"] for actor in ray._private.state.actors().values()
        if actor["State"] == "ALIVE" and actor["ActorClassName"].endswith(f":{deployment}")
    ]  # fmt: skip


USERS = 6


async def traffic(url: str, bodies: list[dict], stop: asyncio.Event, log: list[dict], users: int = USERS) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def user(offset: int) -> None:
            i = offset
            while not stop.is_set():
                body = bodies[i % len(bodies)]
                sent = time.monotonic()
                try:
                    reply = await http.post("/v1/sentiment", json=body)
                    entry = {"t": sent, "status": reply.status_code, "text": body["text"]}
                    try:
                        entry["body"] = reply.json()
                    except ValueError:
                        entry["body"] = None
                except httpx.HTTPError as exc:
                    entry = {"t": sent, "status": type(exc).__name__, "text": body["text"], "body": None}
                log.append(entry)
                i += users

        await asyncio.gather(*(user(k) for k in range(users)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-before-loss", type=float, default=8)
    parser.add_argument("--seconds-after-loss", type=float, default=30)
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)

    import ray
    from ray.cluster_utils import Cluster

    from loadtests.common.net import free_port
    from service.engine.engine import EngineConfig, SentimentEngine
    from service.ops import DEFAULT_PROXY, proxy_environment, start_service
    from service.settings import default_model_dir

    engine = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32", threads=1))
    bodies = [{"text": t} for t in texts(64)]
    expected = {b["text"]: engine.classify_texts([b["text"]])[0] for b in bodies}

    os.environ.update(proxy_environment(DEFAULT_PROXY))  # every node's Ray starts with the service's proxy
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": {"ingress_node": 1}},
    )
    workers = [cluster.add_node(num_cpus=1, resources={"model_node": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="serve", log_to_driver=False)
    report: dict = {"nodes": 3}
    try:
        url = start_service(app_config(free_port()))
        before = replica_nodes("SentimentIngress")
        report["sentiment_replica_nodes_before"] = len(set(before))
        victim = next(w for w in workers if w.node_id in before)

        async def scenario() -> list[dict]:
            log: list[dict] = []
            stop = asyncio.Event()
            load = asyncio.create_task(traffic(url, bodies, stop, log))
            await asyncio.sleep(args.seconds_before_loss)
            report["killed_at"] = killed = time.monotonic()
            await asyncio.to_thread(cluster.remove_node, victim, False)  # like a crash: no graceful shutdown
            recovered = None
            while time.monotonic() - killed < args.seconds_after_loss:
                if recovered is None:
                    sentiment = await asyncio.to_thread(replica_nodes, "SentimentIngress")
                    qa = await asyncio.to_thread(replica_nodes, "QAIngress")
                    if len(sentiment) == 2 and len(qa) == 1 and victim.node_id not in sentiment + qa:
                        recovered = time.monotonic() - killed
                await asyncio.sleep(0.5)
            stop.set()
            await load
            report["replicas_back_after_s"] = recovered
            return log

        log = asyncio.run(scenario())
    finally:
        ray.shutdown()
        cluster.shutdown()

    wrong, unclean, failures = [], [], {}
    for entry in log:
        if entry["status"] == 200:
            got = entry["body"]["results"][0]
            want = expected[entry["text"]]
            if (
                got["label"] != want.label
                or abs(got["probabilities"]["positive"] - want.probabilities["positive"]) > 1e-4
            ):
                wrong.append(entry["text"])
        else:
            failures[str(entry["status"])] = failures.get(str(entry["status"]), 0) + 1
            if not (isinstance(entry["body"], dict) and "error" in entry["body"]):
                unclean.append(entry["status"])
    killed = report.pop("killed_at")
    during = [e for e in log if killed <= e["t"]]
    last_failure = max((e["t"] for e in log if e["status"] != 200), default=None)
    report.update(
        requests=len(log),
        requests_after_loss=len(during),
        failed=sum(failures.values()),
        failures_by_status=failures,
        unclean_failures=len(unclean),
        unclean_statuses=sorted({str(status) for status in unclean}),
        wrong_answers=len(wrong),
        last_failure_after_loss_s=None if last_failure is None else round(last_failure - killed, 2),
    )
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    back = report["replicas_back_after_s"]
    lost = sum(failures.values())
    ok = not wrong and lost <= USERS and back is not None and back < RECOVERY_GOAL_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
