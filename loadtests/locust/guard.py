"""The bounds every load run keeps, shared by the runner and the Locust file: loopback targets only (unless
asked otherwise), and limits on users, time and requests, so a load test always stops by itself.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

MAX_USERS = 500
MAX_SPAWN_RATE = 100.0
MAX_DURATION_S = 3600
DEFAULT_MAX_REQUESTS = 100_000
MAX_REQUESTS = 10_000_000
DEFAULT_MAX_RUN_TIME_S = 1800  # a web-UI session with no run time stops after this long

_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> int:
    """Seconds in '90', '90s', '2m', '1h30m' or '1m30s' (Locust's own --run-time format)."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = _TIMESPAN.match(text)
    if not text or not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 2m, 1h30m)")
    return 3600 * int(match["h"] or 0) + 60 * int(match["m"] or 0) + int(match["s"] or 0)


def _is_loopback_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def loopback_problem(url: str) -> str | None:
    """None when every address `url`'s host stands for is a loopback address; otherwise why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        return f"not a URL: {url!r} ({exc})"
    if parts.scheme not in ("http", "https") or not host:
        return f"not an http(s) URL with a host: {url!r}"
    try:
        return None if _is_loopback_address(host) else f"{host} is not a loopback address"
    except ValueError:
        pass  # a name, not an address literal
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    outside = sorted(a for a in addresses if not _is_loopback_address(a))
    if outside:
        return f"{host} resolves to non-loopback {', '.join(outside)}"
    return None
