"""Traffic split between a model's loaded versions, sticky per caller.

A caller seen for the first time goes to the version furthest below its share of the callers
assigned so far, and stays there until the weights change: the split over callers is as exact as
their number allows (a hash of the caller would leave it to chance: 200 callers at 10 % land
between 6 % and 14 %), and one caller sees one version during a roll-out. Assignments live in
this process (a replica of its own assigns its callers itself) and the oldest are forgotten past
``max_callers``; a forgotten caller is assigned again when it comes back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class TrafficSplit:
    """Weights per version (``{5: 90, 6: 10}``); empty means no split."""

    def __init__(self, weights: dict[int, int] | None = None, max_callers: int = 100_000):
        self.max_callers = max_callers
        self._lock = threading.Lock()
        self.set(weights or {})

    @property
    def weights(self) -> dict[int, int]:
        return dict(self._weights)

    def set(self, weights: dict[int, int]) -> None:
        """New weights (versions with weight 0 are dropped); every caller is assigned again."""
        with self._lock:
            self._weights = {v: w for v, w in sorted(weights.items()) if w > 0}
            self._callers: OrderedDict[str, int] = OrderedDict()
            self._assigned = {v: 0 for v in self._weights}

    def choose(self, caller: str) -> int | None:
        """The version ``caller`` is assigned to, or ``None`` without a split."""
        with self._lock:
            if not self._weights:
                return None
            version = self._callers.get(caller)
            if version is not None:
                self._callers.move_to_end(caller)
                return version
            total_weight, total_assigned = sum(self._weights.values()), sum(self._assigned.values()) + 1
            version = max(self._weights, key=lambda v: self._weights[v] / total_weight * total_assigned - self._assigned[v])
            self._callers[caller] = version
            self._assigned[version] += 1
            if len(self._callers) > self.max_callers:
                _, forgotten = self._callers.popitem(last=False)
                self._assigned[forgotten] -= 1
            return version
