"""The HTTP API's request and response models (pydantic v2). Imports neither torch nor Ray.

Request models forbid unknown fields, so a typo is an error instead of a silently ignored option, and are
strict: `"return_attention": 0` or `"top_k": "3"` are refused as the schema says, not coerced.
Length limits that depend on settings are checked by the routes; structural ones live here. Results are the
engine's own result types (service/engine/results.py), not copies of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.engine.results import QAResult, SentimentResult
from service.settings import BatchSettings

NonEmptyList = Field(min_length=1)
CARD_ROUTE = "/v1/models/card"  # the model card (docs/models.md), one section per model version


def card_link(path_prefix: str, model_id: str, version: str) -> str:
    """Where a model's section of the card is: the anchor names the version, so a retrained model needs its own."""
    return f"{path_prefix}{CARD_ROUTE}#{model_id}-{version}"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)

    model: str | None = Field(
        None,
        description="which of the task's models answers (GET /v1/models lists them); default: the task's first",
        examples=[None],
    )


class SentimentRequest(_Request):
    text: str | list[str] = Field(
        description="one text or a list of texts", examples=["a gorgeous, moving film", ["great!", "awful."]]
    )
    return_attention: bool = Field(False, description="include [CLS] attention over the input tokens")

    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class QAPair(_Request):
    question: str
    context: str


class QARequest(_Request):
    """Either `question` and `context`, or `inputs` (several pairs); not both."""

    question: str | None = Field(None, examples=["When was the tower finished?"])
    context: str | None = Field(None, examples=["The Eiffel Tower was finished in 1889."])
    inputs: list[QAPair] | None = Field(None, description="several (question, context) pairs instead of one")
    top_k: int = Field(1, ge=1, le=20, description="answers per question")
    max_answer_len: int = Field(15, ge=1, le=128, description="longest answer, in tokens")
    doc_stride: int = Field(128, ge=1, le=256, description="tokens shared by consecutive context windows")
    return_attention: bool = Field(
        False, description="include attention from the best answer span (from [CLS] when the best is no answer)"
    )
    handle_impossible_answer: bool = Field(
        False,
        description=(
            'allow "no answer" (Hugging Face\'s handle_impossible_answer): the empty answer '
            '`{"text": "", "start": 0, "end": 0}` competes with the spans at the null score (the lowest over the '
            "context's windows of p_start([CLS]) · p_end([CLS])) and is ranked by it; each result then reports "
            "that score as `no_answer_score`"
        ),
    )

    @model_validator(mode="after")
    def _one_form(self) -> QARequest:
        single = self.question is not None or self.context is not None
        if single and self.inputs is not None:
            raise ValueError("give either question and context, or inputs, not both")
        if not single and self.inputs is None:
            raise ValueError("give question and context, or inputs")
        if single and (self.question is None or self.context is None):
            raise ValueError("question and context go together")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs must not be empty")
        return self

    def pairs(self) -> list[QAPair]:
        if self.inputs is not None:
            return list(self.inputs)
        assert self.question is not None and self.context is not None
        return [QAPair(question=self.question, context=self.context)]


class ModelRef(BaseModel):
    id: str
    version: str


class SentimentResponse(BaseModel):
    model: ModelRef
    results: list[SentimentResult]


class QAResponse(BaseModel):
    model: ModelRef
    results: list[QAResult]


class PrecisionSpeeds(BaseModel):
    """What `precision: auto` measured when the replica loaded its model."""

    chosen: str
    tokens_per_s: dict[str, float]


class ModelInfo(BaseModel):
    task: Literal["sentiment", "qa"]
    id: str = Field(description="what a request names in `model` to be answered by this model")
    default: bool = Field(description="whether requests that name no model get this one")
    loaded: bool = Field(True, description="in memory now; if not, the first request that names it waits for its load")
    family: str = Field(description="the architecture: BERT, DistilBERT, RoBERTa, ELECTRA, DeBERTa-v2, ModernBERT")
    version: str
    base: str
    precision: str = Field(description="the precision the model runs in (auto resolved)")
    precision_speeds: PrecisionSpeeds | None = None
    device: str
    max_tokens: int
    labels: list[str] = Field([], description="sentiment: the label names, exactly as the checkpoint has them")
    multi_label: bool = Field(
        False, description="labels scored each on its own (sigmoid), not as one distribution (softmax)"
    )
    int8_cost_points: float | None = Field(
        None,
        description="points of its own metric (SST-2 accuracy, SQuAD F1) the model loses in int8, as measured and "
        "recorded in its artifact; `precision: auto` considers int8 only when this is at most 0.5 (null: not "
        "measured, so auto never picks int8)",
    )
    load_s: float | None = Field(
        description="seconds this replica took to load the model (read, build, precision probe): what it costs "
        "cold; null while it is not loaded"
    )
    batching: BatchSettings = Field(description="the deployment's live batching and admission settings")
    card: str = Field(
        description="this version's section of the model card (recipe, data, scores)",
        examples=["/v1/models/card#minilm-l6-sentiment-20261125"],
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    details: list[ErrorDetail] = []
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
