"""Operating a running service: live reconfiguration and scaling through the same path users take
(`attention-serve scale` / `serve deploy`: the live config edited through the Ray dashboard's REST API).

These tests change the running application, so they run last (file order) and put things back.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from ray import serve

from service.ops import apply_config, batching_config, live_config, local_dashboard, scaled_config
from service.tasks import TASKS
from tests.service.conftest import MAIN_APPS
from tests.service.test_concurrency import batch_sizes, distinct_texts, new_batches, post_all, task_handle

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout_s: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def set_user_config(task: str, **changes) -> None:
    apply_config(local_dashboard(), batching_config(live_config(local_dashboard()), task, **changes))


def live_user_config(task: str) -> dict:
    for app in live_config(local_dashboard())["applications"]:
        if app["name"] == MAIN_APPS[task]:
            return next(d for d in app["deployments"] if d["name"] == TASKS[task].deployment).get("user_config") or {}
    raise AssertionError(f"no live application {MAIN_APPS[task]}")


def sentiment_batching(client) -> dict:
    models = client.get("/v1/models").json()["models"]
    return next(m for m in models if m["task"] == "sentiment")["batching"]


def running_replicas(task: str) -> int:
    status = serve.status().applications[MAIN_APPS[task]].deployments[TASKS[task].deployment]
    return status.replica_states.get("RUNNING", 0)


def test_batch_size_changes_live_without_a_restart(client, service_url):
    replica = task_handle("sentiment").stats.remote().result()["replica"]
    live = live_user_config("sentiment")
    limits = {k: live.get(k) for k in ("max_queue_wait_s", "overload_queue_wait_s")}
    # One text a batch makes the 40-request burst seconds of queued work, which admission control rightly refuses
    # in part; this test is about batching, so admission is opened while it runs (test_admission tests it).
    set_user_config("sentiment", max_batch_size=1, max_queue_wait_s=30.0, overload_queue_wait_s=None)
    try:
        wait_for(lambda: sentiment_batching(client)["max_batch_size"] == 1, what="the new batch size")
        before = batch_sizes("sentiment")
        replies = asyncio.run(post_all(service_url, "/v1/sentiment", [{"text": t} for t in distinct_texts(40)]))
        assert [r.status_code for r in replies] == [200] * 40, [r.text for r in replies if r.status_code != 200][:2]
        assert new_batches(before, batch_sizes("sentiment")) == {1: 40}
        same = task_handle("sentiment").stats.remote().result()["replica"]
        assert same == replica, "reconfiguring batching must not replace the replica"
    finally:
        set_user_config("sentiment", max_batch_size=32, **limits)
        wait_for(lambda: sentiment_batching(client)["max_batch_size"] == 32, what="batch size restored")


def test_scaling_to_two_replicas_serves_from_both_and_drops_nothing(client, service_url):
    async def traffic_while(change) -> list[int | str]:
        """Eight users posting back to back while `change` runs; each outcome is a status or an error name."""
        async with httpx.AsyncClient(base_url=service_url, timeout=120) as http:
            stop = asyncio.Event()
            replies: list[int | str] = []

            async def user(i: int) -> None:
                n = 0
                while not stop.is_set():
                    try:
                        reply = await http.post("/v1/sentiment", json={"text": f"user {i} request {n} was fine"})
                        ok = reply.status_code == 200  # a refusal keeps its reason, for the assertion's message
                        replies.append(200 if ok else f"{reply.status_code} {reply.text}")
                    except httpx.HTTPError as exc:
                        replies.append(type(exc).__name__)
                    n += 1

            users = [asyncio.create_task(user(i)) for i in range(8)]
            await asyncio.to_thread(change)
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*users)
            return replies

    def scale_to(n: int):
        def change() -> None:
            apply_config(local_dashboard(), scaled_config(live_config(local_dashboard()), "sentiment", n, None, None))
            wait_for(lambda: running_replicas("sentiment") == n, what=f"{n} running replicas")

        return change

    replies = asyncio.run(traffic_while(scale_to(2)))
    try:
        assert replies and set(replies) == {200}, [r for r in replies if r != 200][:3]
        handle = task_handle("sentiment")
        asyncio.run(post_all(service_url, "/v1/sentiment", [{"text": t} for t in distinct_texts(64)]))
        seen = {}
        for _ in range(40):
            stats = handle.stats.remote().result()
            seen[stats["replica"]] = sum(stats["batch_sizes"].values())
        assert len(seen) == 2, seen
        assert all(batches > 0 for batches in seen.values()), f"a replica never served: {seen}"
    finally:
        replies = asyncio.run(traffic_while(scale_to(1)))
    assert replies and set(replies) == {200}, replies
