"""A replica's models of one task (TaskModels), with real tiny checkpoints and real engines, without Ray: requests
name their model, a batch never mixes models, and a bound on loaded models loads on demand and lets the least
recently used idle one go."""

from __future__ import annotations

import asyncio

import pytest

from service.engine.engine import EngineConfig, SentimentEngine
from service.protocol import SentimentRequest
from service.serving.models import TaskModels, UnknownModelError
from service.settings import Settings
from tests.families.tiny import build_checkpoint

pytest.importorskip("transformers", reason="the tiny checkpoints are built with transformers (a test dependency)")
FAMILIES = ["bert", "roberta", "distilbert"]
TEXTS = ["A gorgeous, moving film.", "dull", "The Eiffel Tower was finished in 1889."]


@pytest.fixture(scope="module")
def directories(tmp_path_factory):
    return {
        f: str(build_checkpoint(f, "sentiment", tmp_path_factory.mktemp(f), seed=i)) for i, f in enumerate(FAMILIES)
    }


def _settings(directories, **deployment) -> Settings:
    batching = {"precision": "fp32", "batch_wait_timeout_s": 0.01}
    return Settings(sentiment={"models": directories, "threads": 1, "batching": batching, **deployment})


async def _ask(models: TaskModels, model: str | None, text: str):
    worker = await models.acquire(model)
    results, _ = await worker.run(worker.prepare(SentimentRequest(text=text, model=model)))
    return worker.id, results[0]


def test_each_request_gets_its_own_models_answer_and_batches_never_mix_models(directories):
    alone = {
        (f, t): SentimentEngine(d, EngineConfig(precision="fp32")).classify_texts([t])[0]
        for f, d in directories.items()
        for t in TEXTS
    }

    async def main():
        models = TaskModels("sentiment", _settings(directories))
        asks = [(f, t) for f in FAMILIES for t in TEXTS] * 4
        answers = await asyncio.gather(*(_ask(models, f, t) for f, t in asks))
        return models, asks, answers

    models, asks, answers = asyncio.run(main())
    for (family, text), (answered_by, result) in zip(asks, answers, strict=True):
        assert answered_by == family
        assert result.probabilities == pytest.approx(alone[family, text].probabilities, abs=1e-4)
    sizes = models.batch_sizes()
    assert all(sum(n * count for n, count in sizes[f].items()) == 4 * len(TEXTS) for f in FAMILIES)
    assert any(n > 1 for f in FAMILIES for n in sizes[f])  # requests did share batches, each within its model


def test_requests_naming_no_model_get_the_first_and_an_unknown_one_is_refused(directories):
    async def main():
        models = TaskModels("sentiment", _settings(directories))
        assert (await _ask(models, None, "fine"))[0] == "bert"
        with pytest.raises(UnknownModelError, match="no sentiment model 'gpt2'; this service serves 'bert'"):
            await models.acquire("gpt2")

    asyncio.run(main())


def test_a_bound_on_loaded_models_loads_on_demand_once_and_lets_the_least_recently_used_idle_one_go(directories):
    async def main():
        models = TaskModels("sentiment", _settings(directories, max_loaded_models=2))
        assert list(models.workers) == ["bert", "roberta"]
        described = {m.id: m for m in models.describe()}
        assert [m.loaded for m in described.values()] == [True, True, False]
        assert described["distilbert"].family == "DistilBERT" and described["distilbert"].load_s is None
        assert described["distilbert"].labels == ["Negative", "neutral", "POSITIVE"]
        # Three requests for the unloaded model at once: one load, all answered by it.
        answers = await asyncio.gather(*(_ask(models, "distilbert", t) for t in TEXTS))
        assert {by for by, _ in answers} == {"distilbert"}
        assert list(models.workers) == ["bert", "distilbert"]  # roberta, least recently used, was let go
        assert models.describe()[2].load_s > 0
        await _ask(models, "roberta", "back again")  # loads again; now distilbert is the one let go, never bert
        assert list(models.workers) == ["bert", "roberta"]
        await _ask(models, None, "the default stays")
        assert "bert" in models.workers

    asyncio.run(main())
