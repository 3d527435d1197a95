"""The Serve replica processes of an application on this machine, found by the titles Ray gives them, and their
resident memory: the one place the reliability runs (hostile, soak) read it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import psutil

MB = 1024 * 1024


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


def replica_memory(apps: Iterable[str]) -> dict[str, int]:
    """Resident bytes of each replica of `apps` and of Serve's proxy, by their Ray process titles."""
    return {
        f"{name} (pid {process.pid})": process.info["memory_info"].rss
        for app in apps
        for name, process in serve_processes(app, with_proxy=True)
    }
