"""Faults on demand: latency, 429s, 5xx, timeouts, dropped connections, malformed JSON,
and (only when asked for by name) the exchange refusing the key's permission.

A rule applies to every request, to one account's requests or to paths containing a
string; each matching rule adds its latency and rolls its own rate with one seeded RNG,
so a run with the same seed and request order injects the same faults.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

#: transient faults, the default of every rule: a retry may get through
FAULT_KINDS: tuple[str, ...] = ("429", "5xx", "timeout", "drop", "malformed")
#: faults a rule injects only when named: "denied" answers with the dialect's permission
#: error (e.g. a spot-only key asking for derivative positions)
EXTRA_KINDS: tuple[str, ...] = ("denied",)


@dataclass(frozen=True)
class FaultRule:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    account_id: str | None = None
    path: str | None = None
    latency_ms: float = 0.0
    #: how many more faults this rule may inject (None: unlimited)
    remaining: int | None = None

    def matches(self, account_id: str | None, path: str) -> bool:
        return (self.account_id is None or self.account_id == account_id) and (self.path is None or self.path in path)


@dataclass(frozen=True)
class Decision:
    latency_ms: float
    kind: str | None


class Faults:
    """The fault plan of one simulator; safe to change from any thread while it serves."""

    def __init__(self, seed: int, rate: float = 0.0, latency_ms: float = 0.0, timeout_s: float = 30.0) -> None:
        self._baseline = FaultRule(rate=rate, latency_ms=latency_ms)
        self._rules: list[FaultRule] = []
        self._rng = random.Random(f"{seed}:faults")
        self._lock = threading.Lock()
        #: how long a "timeout" fault holds the request before answering 504
        self.timeout_s = timeout_s

    def set(
        self,
        rate: float = 0.0,
        kinds: Iterable[str] = FAULT_KINDS,
        account_id: str | None = None,
        path: str | None = None,
        latency_ms: float | None = None,
        times: int | None = None,
    ) -> None:
        """Add a rule, replacing any earlier one with the same (account_id, path) scope.

        ``rate`` is the chance (0..1) that a matching request gets one of ``kinds``;
        ``times`` stops the rule after that many faults (e.g. "the next two requests").
        """
        kinds = tuple(kinds)
        unknown = set(kinds) - set(FAULT_KINDS) - set(EXTRA_KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be some of {FAULT_KINDS + EXTRA_KINDS}, got {kinds}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        rule = FaultRule(rate, kinds, account_id, path, latency_ms or 0.0, times)
        with self._lock:
            self._rules = [r for r in self._rules if (r.account_id, r.path) != (account_id, path)] + [rule]

    def clear(self) -> None:
        """Drop every rule added with ``set``; the configured baseline stays."""
        with self._lock:
            self._rules = []

    def decide(self, account_id: str | None, path: str) -> Decision:
        latency, kind = 0.0, None
        with self._lock:
            for index, rule in enumerate([self._baseline, *self._rules]):
                if not rule.matches(account_id, path):
                    continue
                latency += rule.latency_ms
                if kind is None and rule.rate > 0 and self._rng.random() < rule.rate:
                    kind = self._rng.choice(rule.kinds)
                    if rule.remaining is not None:
                        self._spend(index - 1, rule)
        return Decision(latency, kind)

    def _spend(self, position: int, rule: FaultRule) -> None:
        left = (rule.remaining or 0) - 1
        if left <= 0:
            del self._rules[position]
        else:
            self._rules[position] = replace(rule, remaining=left)
