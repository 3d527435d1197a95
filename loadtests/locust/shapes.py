"""A step load shape for finding the knee: load it beside the locustfile.

    locust -f loadtests/locust/locustfile.py,loadtests/locust/shapes.py --host http://127.0.0.1:8000 --headless \\
        --users 40 --spawn-rate 10 --step-users 5 --step-time 30s --csv runs/load/locust

Users rise by --step-users every --step-time up to --users; the last step is held for one step, then the test
stops by itself (or at --run-time, whichever is first). A ramp is the same with --step-users 1 and a short
--step-time. Each step's throughput and latency, measured once its users are spawned, is logged at the end
and written to <csv prefix>_steps.csv; `python -m loadtests.locust --shape step` reports the knee from it.
Per-step statistics are kept in this process: run it as one Locust process, not --master/--worker.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from locust import LoadTestShape, events
from locust.runners import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from loadtests.locust.guard import parse_duration  # noqa: E402
from loadtests.locust.steps import StepPlan, StepStats, find_knee, format_rows, write_rows  # noqa: E402

logger = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument(
        "--step-users", type=int, default=5, env_var="LOCUST_STEP_USERS", help="users added at each step (default 5)"
    )
    parser.add_argument("--step-time", default="30s", env_var="LOCUST_STEP_TIME",
                       help="how long each step lasts (default 30s)")  # fmt: skip


class StepLoadShape(LoadTestShape):
    use_common_options = True  # --users is the top step, --spawn-rate the ramp within a step, --run-time a cap

    def __init__(self) -> None:
        self.plan: StepPlan | None = None
        self.stats: StepStats | None = None
        self.started_at = time.time()
        super().__init__()

    def reset_time(self) -> None:
        super().reset_time()
        self.started_at = time.time()
        runner = getattr(self, "runner", None)
        options = runner.environment.parsed_options if runner is not None else None
        if options is None:
            return
        run_time = options.run_time or None  # Locust parses --run-time to seconds
        self.plan = StepPlan(
            step_users=options.step_users,
            step_time_s=parse_duration(str(options.step_time)),
            max_users=options.num_users or options.step_users,
            spawn_rate=options.spawn_rate or float(options.step_users),
            run_time_s=run_time,
        )
        self.stats = StepStats(self.plan)
        logger.info(
            "step shape: +%d users every %ss up to %d users, %d steps, %.0f s in all",
            self.plan.step_users, self.plan.step_time_s, self.plan.max_users, self.plan.steps, self.plan.total_s,
        )  # fmt: skip

    def tick(self):
        if self.plan is None:
            self.reset_time()
        if self.plan is None:
            return None
        where = self.plan.at(self.get_run_time())
        if where is None:
            return None
        return where[1], self.plan.spawn_rate


SHAPE: StepLoadShape | None = None


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global SHAPE
    SHAPE = environment.shape_class if isinstance(environment.shape_class, StepLoadShape) else None


@events.request.add_listener
def _on_request(start_time: float, response_time: float, exception, **_kwargs) -> None:
    if SHAPE is not None and SHAPE.stats is not None:
        SHAPE.stats.record(start_time - SHAPE.started_at, response_time, exception is not None)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if SHAPE is None or SHAPE.stats is None or isinstance(environment.runner, WorkerRunner):
        return
    rows = SHAPE.stats.rows(time.time() - SHAPE.started_at)
    logger.info("per step, measured once each step's users were running:\n%s", format_rows(rows))
    if knee := find_knee(rows):
        logger.info("knee: throughput stops growing past %d users (%.1f req/s)", knee["users"], knee["rps"])
    prefix = environment.parsed_options.csv_prefix if environment.parsed_options else None
    if prefix:
        write_rows(Path(f"{prefix}_steps.csv"), rows)
