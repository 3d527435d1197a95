"""Debian tools the tests run for real (Prometheus, promtool), installed on first use.

The test machine has only Python; `apt-get` works there (as root). Nothing is mocked: if the tool cannot be
installed, the tests that need it fail and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_debian_binary(binary: str, package: str) -> str:
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{binary} is missing; install it with `sudo apt-get install -y {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"installed {package} but {binary} is still not on PATH")
    return found
