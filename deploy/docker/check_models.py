"""Build-time check (Dockerfile): the installed package carries its task models and the pretrained base.

Run it from outside the source tree, so that `service` is the installed package, not the sources beside it.
"""

from __future__ import annotations

import sys

from service.engine.layout import ADAPTER_FILE, ARTIFACT_FILE, default_base_dir
from service.settings import default_model_dir

TASKS = ("sentiment", "qa")


def missing_artifacts() -> list[str]:
    files = [default_model_dir(task) / name for task in TASKS for name in (ARTIFACT_FILE, ADAPTER_FILE)]
    files += [default_base_dir() / "model.safetensors", default_base_dir() / "tokenizer.json"]
    return [str(path) for path in files if not path.is_file()]


if __name__ == "__main__":
    missing = missing_artifacts()
    if missing:
        sys.exit(f"model artifacts missing from the installed package: {missing}")
