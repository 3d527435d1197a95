"""The Serve replica processes of an application on this machine, found by the titles Ray gives them."""

from __future__ import annotations

from collections.abc import Iterator

import psutil


def serve_processes(app: str, with_proxy: bool = False) -> Iterator[tuple[str, psutil.Process]]:
    """(deployment name, process) for every replica of `app`, and ("ProxyActor", process) with `with_proxy`.

    Ray titles a replica `ray::ServeReplica:<app>:<deployment>`, with `.<method>` appended while it runs one.
    """
    prefix = f"ray::ServeReplica:{app}:"
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith(prefix):
            yield title.removeprefix(prefix).split(".")[0].split()[0], process
        elif with_proxy and title.startswith("ray::ProxyActor"):
            yield "ProxyActor", process
