"""Per-caller limits on tool calls: how many at once, and how many per minute.

Plain bookkeeping, no I/O: `admit` either reserves a slot (released by `release`) or says why not.
Every attempt counts against the per-minute budget, refused ones too: a caller that keeps calling past
its limit stays refused until it slows down, and the bookkeeping per caller is at most
`calls_per_minute` timestamps (the latest attempts). All calls happen on the server's event loop,
between awaits, so no lock is needed.
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
        # The latest attempts of each caller, admitted or refused: at most calls_per_minute of them.
        self._attempts: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=limits.calls_per_minute))

    def admit(self, caller: str) -> str | None:
        """Reserve a slot for `caller` and return None, or return why the call is refused."""
        now = self._clock()
        attempts = self._attempts[caller]
        while attempts and now - attempts[0] >= WINDOW_S:
            attempts.popleft()
        over_budget = len(attempts) >= self.limits.calls_per_minute
        attempts.append(now)  # counted whatever the answer (the oldest falls out when full)
        if over_budget:
            retry = max(1, math.ceil(WINDOW_S - (now - attempts[0])))
            return (
                f"too many calls: {caller!r} may make {self.limits.calls_per_minute} tool calls per minute "
                f"on this server, refused ones included; call again in {retry} s without calling meanwhile"
            )
        if self._running[caller] >= self.limits.max_concurrent:
            return (
                f"too many calls at once: {caller!r} may run {self.limits.max_concurrent} tool calls at a "
                "time on this server; wait for one to finish, then call again"
            )
        self._running[caller] += 1
        return None

    def release(self, caller: str) -> None:
        self._running[caller] -= 1
