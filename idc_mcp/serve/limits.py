"""Per-caller limits on tool calls: how many at once, and how many per minute.

Plain bookkeeping, no I/O: `admit` either reserves a slot (released by `release`) or says why not.
All calls happen on the server's event loop, between awaits, so no lock is needed.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Limits:
    max_concurrent: int  # tool calls running at once, per caller
    calls_per_minute: int  # tool calls started in any 60-second window, per caller


class CallLimiter:
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic):
        if limits.max_concurrent < 1 or limits.calls_per_minute < 1:
            raise ValueError("limits must be at least 1")
        self.limits = limits
        self._clock = clock
        self._running: dict[str, int] = defaultdict(int)
        self._started: dict[str, deque[float]] = defaultdict(deque)

    def admit(self, caller: str) -> str | None:
        """Reserve a slot for `caller` and return None, or return why the call is refused."""
        now = self._clock()
        started = self._started[caller]
        while started and now - started[0] >= WINDOW_S:
            started.popleft()
        if self._running[caller] >= self.limits.max_concurrent:
            return (
                f"too many calls at once: {caller!r} may run {self.limits.max_concurrent} tool calls at a "
                "time on this server; wait for one to finish, then call again"
            )
        if len(started) >= self.limits.calls_per_minute:
            retry = max(1, math.ceil(WINDOW_S - (now - started[0])))
            return (
                f"too many calls: {caller!r} may start {self.limits.calls_per_minute} tool calls per minute "
                f"on this server; call again in {retry} s"
            )
        self._running[caller] += 1
        started.append(now)
        return None

    def release(self, caller: str) -> None:
        self._running[caller] -= 1
