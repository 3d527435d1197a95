"""Shared by the deployment tests: what the installed Ray's `ray start` accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def ray_start_options() -> set[str]:
    """The long options of this Ray's `ray start` (read from its --help; nothing is started)."""
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    assert ray, "the ray CLI is missing: pip install -e ."
    result = subprocess.run([ray, "start", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", result.stdout))
    assert {"--head", "--address", "--block", "--metrics-export-port"} <= options, result.stdout
    return options
