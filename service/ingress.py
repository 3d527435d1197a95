"""The Serve deployments: one ingress per task, and the front beside them.

A task's ingress is the whole request path in one replica (one hop from the proxy): the HTTP edge, validation,
tokenization, its in-process batch queue and the model on a worker thread. No DeploymentHandle call is on the
request path. The front answers health, readiness, the model list, the API docs and the explorer page, asking
the task deployments through handles (off the request path).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI
from ray import serve

from service.http.edge import Edge
from service.http.errors import Unavailable
from service.http.routes import api_app, front_router, openapi_app, qa_router, sentiment_router
from service.protocol import ModelInfo, ModelsResponse
from service.serving.admission import QueueAdmission
from service.serving.models import TaskModels
from service.settings import Settings
from service.tasks import Task

logger = logging.getLogger("ray.serve")


class _TaskIngress:
    """What both task ingresses share: settings, the models' life cycle, health, live reconfiguration.

    The models load in the constructor, at the settings' precision, before the replica takes a request; Serve then
    calls `reconfigure` with the deployment's user_config, which reloads only if that asks for another precision.
    """

    task: Task

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings.model_validate(settings)
        self.models: TaskModels = TaskModels(self.task, self.settings)

    def _edge(self) -> Edge:
        return Edge.for_replica(self.settings, QueueAdmission(lambda: self.models))

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve calls this with the deployment's user_config: batching at once, precision by reloading.

        A partial user_config changes only the fields it names; the others keep this task's settings."""
        await self.models.reconfigure(getattr(self.settings, self.task).batching.updated(user_config))

    async def check_health(self) -> None:
        """Serve calls this periodically: a tiny forward pass proves each model still answers."""
        await self.models.ping()

    async def ping(self) -> bool:
        await self.models.ping()
        return True

    def describe(self) -> list[ModelInfo]:
        """What this replica serves (the front's /v1/models asks through a handle)."""
        return self.models.describe(self.settings.path_prefix)

    def stats(self) -> dict[str, Any]:
        """Which replica this is and the sizes of the batches it has run, per model (for operators and tests)."""
        sizes = self.models.batch_sizes()
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "batch_sizes": sizes[self.models.default.id],
            "batch_sizes_by_model": sizes,
        }


@serve.deployment(name="SentimentIngress")
@serve.ingress()
class SentimentIngress(_TaskIngress):
    task = "sentiment"

    def __serve_build_asgi_app__(self) -> FastAPI:
        return api_app(self.settings, self._edge(), sentiment_router(self.settings, lambda: self.models))


@serve.deployment(name="QAIngress")
@serve.ingress()
class QAIngress(_TaskIngress):
    task = "qa"

    def __serve_build_asgi_app__(self) -> FastAPI:
        return api_app(self.settings, self._edge(), qa_router(self.settings, lambda: self.models))


@serve.deployment(name="Front")
@serve.ingress()
class Front:
    """Health, readiness, models, docs and the explorer; one OpenAPI document for every application's routes."""

    def __init__(self, settings: dict[str, Any], task_apps: dict[str, tuple[str, str]]) -> None:
        self.settings = Settings.model_validate(settings)
        self._task_apps = task_apps  # task -> (application, deployment)

    def _handle(self, task: str):
        app_name, deployment = self._task_apps[task]
        return serve.get_deployment_handle(deployment, app_name=app_name)

    async def _ask(self, task: str, method: str, timeout_s: float) -> Any:
        return await asyncio.wait_for(getattr(self._handle(task), method).remote(), timeout=timeout_s)

    async def models(self) -> ModelsResponse:
        found = []
        for task in self._task_apps:
            try:
                found += [ModelInfo.model_validate(info) for info in await self._ask(task, "describe", 5)]
            except Exception:
                raise Unavailable(f"the {task} model is not answering") from None
        return ModelsResponse(models=found)

    async def readiness(self) -> dict[str, str]:
        async def check(task: str) -> str:
            try:
                await self._ask(task, "ping", 10)
                return "ok"
            except Exception as exc:
                return f"unavailable: {type(exc).__name__}"

        results = await asyncio.gather(*(check(task) for task in self._task_apps))
        return dict(zip(self._task_apps, results, strict=True))

    def __serve_build_asgi_app__(self) -> FastAPI:
        from service.http.explorer import explorer_router

        app = api_app(
            self.settings,
            Edge.for_replica(self.settings),
            front_router(self.models, self.readiness, self.settings.model_card_file()),
            explorer_router(),
        )
        # The docs describe the whole API, the task applications' routes too.
        app.openapi = openapi_app(self.settings, self.models, self.readiness).openapi  # type: ignore[method-assign]
        return app
