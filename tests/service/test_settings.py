"""Settings: a partial override keeps a task's own defaults (no Ray needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.ops import batching_config
from service.settings import QABatching, SentimentBatching, Settings


def test_an_environment_override_of_one_field_keeps_the_tasks_batching(monkeypatch):
    monkeypatch.setenv("ATTENTION_SERVE_QA__MIN_REPLICAS", "3")
    monkeypatch.setenv("ATTENTION_SERVE_SENTIMENT__BATCHING__OVERLOAD_TARGET_S", "0.3")
    settings = Settings()
    assert settings.qa.min_replicas == 3
    assert settings.qa.batching.max_queue_wait_s == QABatching().max_queue_wait_s
    assert settings.sentiment.batching.overload_target_s == 0.3
    assert settings.sentiment.batching.max_queue_wait_s == SentimentBatching().max_queue_wait_s
    assert settings.sentiment.batching.overload_queue_wait_s == SentimentBatching().overload_queue_wait_s


def test_a_config_override_of_one_batching_field_keeps_the_others():
    settings = Settings(qa={"batching": {"max_batch_size": 8}}, sentiment={"threads": 2})
    assert settings.qa.batching.max_batch_size == 8
    assert settings.qa.batching.max_queue_wait_s == QABatching().max_queue_wait_s
    assert settings.sentiment.threads == 2
    assert settings.sentiment.batching.overload_queue_wait_s == SentimentBatching().overload_queue_wait_s


def test_a_live_batching_change_starts_from_the_tasks_defaults():
    app = {"name": "attention-serve-qa", "route_prefix": "/v1/qa", "deployments": [{"name": "QAIngress"}]}
    config = batching_config({"applications": [app]}, "qa", max_batch_size=4)
    user_config = config["applications"][0]["deployments"][0]["user_config"]
    assert user_config["max_batch_size"] == 4
    assert user_config["max_queue_wait_s"] == QABatching().max_queue_wait_s


def test_a_lower_limit_given_alone_turns_off_the_default_overload_limit_above_it():
    settings = Settings(sentiment={"batching": {"max_queue_wait_s": 0.05}})
    assert settings.sentiment.batching.max_queue_wait_s == 0.05
    assert settings.sentiment.batching.overload_queue_wait_s is None
    both = Settings(sentiment={"batching": {"max_queue_wait_s": 0.5, "overload_queue_wait_s": 0.1}})
    assert both.sentiment.batching.overload_queue_wait_s == 0.1


def test_a_lower_limit_from_the_environment_is_compared_as_a_number(monkeypatch):
    monkeypatch.setenv("ATTENTION_SERVE_SENTIMENT__BATCHING__MAX_QUEUE_WAIT_S", "0.05")
    assert Settings().sentiment.batching.overload_queue_wait_s is None
    monkeypatch.setenv("ATTENTION_SERVE_SENTIMENT__BATCHING__MAX_QUEUE_WAIT_S", "soon")
    with pytest.raises(ValidationError):
        Settings()


def test_a_live_limit_change_drops_an_overload_limit_above_it():
    deployment = {"name": "SentimentIngress", "user_config": Settings().sentiment.batching.model_dump()}
    app = {"name": "attention-serve-sentiment", "route_prefix": "/v1/sentiment", "deployments": [deployment]}
    config = batching_config({"applications": [app]}, "sentiment", max_queue_wait_s=0.2)
    user_config = config["applications"][0]["deployments"][0]["user_config"]
    assert user_config["max_queue_wait_s"] == 0.2 and user_config["overload_queue_wait_s"] is None


def test_the_overload_limit_can_be_turned_off_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTENTION_SERVE_SENTIMENT__BATCHING__OVERLOAD_QUEUE_WAIT_S", "null")
    assert Settings().sentiment.batching.overload_queue_wait_s is None


def test_each_task_declares_its_defaults_once_and_a_live_change_keeps_the_rest():
    assert (SentimentBatching().max_batch_size, QABatching().max_batch_size) == (8, 32)
    live = Settings().sentiment.batching.updated({"max_batch_size": 4})
    assert isinstance(live, SentimentBatching) and live.max_batch_size == 4 and live.overload_queue_wait_s == 0.25
    with pytest.raises(ValidationError):
        Settings().qa.batching.updated({"max_batch_size": 0})
