"""Refusals in the logs: the first few of each caller each minute one by one, the rest as one count.

A caller past its limits can send refused requests as fast as the network carries them. Logged one by
one they would fill the operator's log and push every earlier record out of the rotated audit log; so
each caller gets at most `per_minute` refusal records a minute (log line and audit record), and the
refusals past that are counted and written as one summary record when the minute is over:

    {"time": ..., "token_id": "mallory", "outcome": "refused_summary", "refused": 5210, "window_s": 60}

Plain bookkeeping on the server's event loop (no lock). The callers are token ids, `anonymous` or
`local`: a fixed set, so the table stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

WINDOW_S = 60.0
REFUSALS_RECORDED_PER_MINUTE = 10


@dataclass
class _Window:
    started: float  # monotonic
    started_at: datetime
    recorded: int = 0
    held: int = 0  # refusals counted but not recorded one by one


class RefusalLedger:
    def __init__(
        self, per_minute: int = REFUSALS_RECORDED_PER_MINUTE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._ended: list[dict[str, Any]] = []  # summaries of minutes that are over, not yet written

    def record_one_by_one(self, caller: str) -> bool:
        """Count a refusal of `caller`; True when it gets its own record, False when it is only counted."""
        now = self._clock()
        window = self._windows.get(caller)
        if window is None or now - window.started >= WINDOW_S:
            if window is not None and window.held:
                self._ended.append(_summary(caller, window))
            window = self._windows[caller] = _Window(now, datetime.now(UTC))
        if window.recorded < self.per_minute:
            window.recorded += 1
            return True
        window.held += 1
        return False

    def due(self, *, everything: bool = False) -> list[dict[str, Any]]:
        """Summary records of the minutes that are over (all of them at shutdown, `everything`)."""
        now = self._clock()
        ready, self._ended = self._ended, []
        for caller, window in list(self._windows.items()):
            if window.held and (everything or now - window.started >= WINDOW_S):
                ready.append(_summary(caller, window))
                del self._windows[caller]
        return ready


def _summary(caller: str, window: _Window) -> dict[str, Any]:
    return {
        "time": window.started_at.isoformat(timespec="microseconds"),
        "token_id": caller,
        "outcome": "refused_summary",
        "refused": window.held,
        "window_s": int(WINDOW_S),
    }
