"""Errors the engine raises for bad models or bad input.

    EngineError                       anything the engine refuses, with a stable `code`
    ├── ModelLoadError                a model directory that cannot be served
    │   └── UnsupportedModelError     a checkpoint this encoder cannot run
    └── InputError                    input the caller must change (the service maps these to 422)
        ├── EmptyInputError           empty, whitespace-only or control-character-only text
        ├── InvalidTextError          not Unicode text: unpaired surrogates (JSON's "\ud800" escapes)
        ├── QuestionTooLongError      question over max_question_len tokens
        └── ContextTooLongError       context needing more windows than max_windows

The engine never raises for text that is merely long: sentiment truncates and says so.
"""


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ModelLoadError(EngineError):
    code = "model_load_error"


class UnsupportedModelError(ModelLoadError):
    code = "unsupported_model"


class InputError(EngineError):
    code = "invalid_input"


class EmptyInputError(InputError):
    code = "empty_input"


class InvalidTextError(InputError):
    code = "invalid_text"


class QuestionTooLongError(InputError):
    code = "question_too_long"


class ContextTooLongError(InputError):
    code = "context_too_long"
