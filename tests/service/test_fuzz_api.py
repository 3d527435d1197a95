"""Schema fuzzing: schemathesis generates requests from the service's own OpenAPI document and checks every answer.

All of schemathesis' checks run (no 5xx; status codes, content types, headers and bodies as documented;
schema-invalid requests refused; schema-valid ones accepted, see schemathesis.toml; 405s with `Allow`) over
its example, coverage (boundary values, wrong types, missing fields) and fuzzing phases, against the real
service on Ray Serve.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_CASES = 1000


def test_generated_requests_get_documented_answers(service_url, tmp_path):
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{service_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "1000",  # per operation and phase; schemathesis stops early where it runs out of new cases (~1,000 in all)
        "--workers",
        "2",
        "--request-timeout",
        "60",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=tmp_path)  # its cache goes there
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated, report[-2000:]
    assert int(generated.group(1)) >= MIN_CASES, report[-2000:]
