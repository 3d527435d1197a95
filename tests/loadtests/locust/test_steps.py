"""The step load shape's schedule, per-step statistics and knee detection."""

from __future__ import annotations

import pytest

from loadtests.locust.steps import StepPlan, StepStats, find_knee, format_rows, read_rows, write_rows


def test_schedule_rises_by_steps_and_stops_by_itself():
    plan = StepPlan(step_users=5, step_time_s=10, max_users=12, spawn_rate=5)
    assert plan.steps == 3 and plan.total_s == 30
    assert [plan.at(t) for t in (0, 9.9, 10, 25, 29.9)] == [(0, 5), (0, 5), (1, 10), (2, 12), (2, 12)]
    assert plan.at(30) is None and plan.at(-1) is None


def test_run_time_caps_the_schedule():
    plan = StepPlan(step_users=1, step_time_s=10, max_users=100, spawn_rate=1, run_time_s=25)
    assert plan.total_s == 25
    assert plan.at(24.9) == (2, 3) and plan.at(25) is None


def test_settle_time_is_the_spawn_time_at_most_half_a_step():
    assert StepPlan(5, 10, 20, spawn_rate=5).settle_s == 1
    assert StepPlan(5, 4, 20, spawn_rate=1).settle_s == 2


@pytest.mark.parametrize("field", ["step_users", "step_time_s", "max_users", "spawn_rate"])
def test_plan_rejects_nonsense(field):
    good = {"step_users": 1, "step_time_s": 1, "max_users": 1, "spawn_rate": 1}
    with pytest.raises(ValueError):
        StepPlan(**{**good, field: 0})


def test_step_stats_leave_out_the_settle_time_and_count_per_step(tmp_path):
    plan = StepPlan(step_users=2, step_time_s=10, max_users=4, spawn_rate=2)  # settle 1 s
    stats = StepStats(plan)
    stats.record(0.5, 999, failed=False)  # spawning: left out
    for i in range(90):
        stats.record(1 + i / 10, 100 + i, failed=i == 0)
    for i in range(180):
        stats.record(11 + i / 20, 200, failed=False)
    stats.record(20.5, 1, failed=False)  # after the end: left out
    rows = stats.rows(elapsed_s=20.2)
    assert [(r["step"], r["users"], r["requests"], r["failures"], r["rps"]) for r in rows] == [
        (1, 2, 90, 1, 10.0),
        (2, 4, 180, 0, 20.0),
    ]
    assert rows[0]["p50_ms"] == 144 and rows[0]["p95_ms"] == 185
    write_rows(tmp_path / "steps.csv", rows)
    assert read_rows(tmp_path / "steps.csv") == rows
    assert "step users" in format_rows(rows)


def test_a_step_cut_short_by_the_end_of_the_test_is_measured_for_the_time_it_ran():
    stats = StepStats(StepPlan(step_users=1, step_time_s=10, max_users=3, spawn_rate=10))
    assert [r["seconds"] for r in stats.rows(elapsed_s=14.9)] == [9.9, 4.8]


def row(users: int, rps: float) -> dict:
    return {"users": users, "rps": rps, "requests": int(rps * 10) or 0}


def test_knee_is_where_more_users_stop_buying_throughput():
    rows = [row(5, 40), row(10, 75), row(15, 95), row(20, 99), row(25, 98)]
    assert find_knee(rows)["users"] == 15
    assert find_knee(rows, min_gain=0.3)["users"] == 10


def test_no_knee_while_throughput_still_grows_or_with_one_step():
    assert find_knee([row(5, 40), row(10, 75), row(15, 110)]) is None
    assert find_knee([row(5, 40)]) is None
    assert find_knee([]) is None


def test_steps_without_requests_are_skipped():
    assert find_knee([row(5, 40), row(10, 0), row(15, 41)])["users"] == 5
