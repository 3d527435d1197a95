"""Per-client token buckets: a steady rate with room for bursts, in bounded memory.

Each client (the peer address the replica sees, or the address a trusted front proxy puts in `client_ip_header`)
owns a bucket of `burst` tokens that refills at `per_second`; a request takes one token or is refused with the wait
until the next one. Clients are kept least recently seen first and the oldest are forgotten past `max_clients`, so
a scan from many addresses cannot grow the table without bound. A forgotten client simply starts again with a full
bucket.

The limit holds per replica: with N replicas of a task a client may get up to N times the rate.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    def __init__(
        self,
        per_second: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("per_second must be > 0, burst and max_clients ≥ 1")
        self.per_second = per_second
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, updated at)

    def take(self, client: str) -> float:
        """Take one token for `client`: 0.0 when allowed, else the seconds until a token is free."""
        now = self.clock()
        tokens, updated = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.per_second)
        if tokens >= 1:
            tokens, wait = tokens - 1, 0.0
        else:
            wait = (1 - tokens) / self.per_second
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)
