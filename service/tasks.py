"""The service's tasks, declared once: each task's route, its Serve deployment and application.

The HTTP edge finds a request's task by its route, the app builders name applications and deployments from
here, ops and the command line address a task's deployment by it, and the tests iterate over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.engine.results import Task


@dataclass(frozen=True)
class TaskSpec:
    name: Task
    route: str  # below the API's path prefix
    deployment: str  # the Serve deployment of the task's ingress
    builder: str  # the app builder's import path, for a Serve config

    def application(self, base: str) -> str:
        """The task's Serve application name beside the front application `base`."""
        return f"{base}-{self.name}"


TASKS: dict[Task, TaskSpec] = {
    "sentiment": TaskSpec("sentiment", "/v1/sentiment", "SentimentIngress", "service.app:sentiment_app"),
    "qa": TaskSpec("qa", "/v1/qa", "QAIngress", "service.app:qa_app"),
}
TASK_OF_ROUTE: dict[str, Task] = {spec.route: name for name, spec in TASKS.items()}

__all__ = ["TASKS", "TASK_OF_ROUTE", "Task", "TaskSpec"]
