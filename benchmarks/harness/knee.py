"""The knee search: the highest offered rate that still passes, found with few points,
because each point costs a quarter of a minute of two busy cores."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Knee:
    """Adaptive rate sweep: grow by ``factor`` until a point fails, then bisect."""

    start: float
    factor: float
    tolerance: float
    max_points: int
    max_rate: float
    lo: float | None = None
    hi: float | None = None
    next: float | None = None
    points: int = 0
    retried: set[float] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.next = self.start

    @property
    def done(self) -> bool:
        if self.next is None or self.points >= self.max_points:
            return True
        if self.lo is not None and self.hi is not None:
            return (self.hi - self.lo) / self.lo <= self.tolerance
        return False

    def record(self, rate: float, ok: bool) -> None:
        self.points += 1
        if ok:
            self.lo = rate if self.lo is None else max(self.lo, rate)
            if self.hi is None:
                nxt = rate * self.factor
                self.next = None if nxt > self.max_rate else round_rate(nxt)
            else:
                self.next = round_rate((self.lo + self.hi) / 2)
        else:
            self.hi = rate if self.hi is None else min(self.hi, rate)
            if self.lo is None:
                nxt = rate / self.factor
                self.next = None if nxt < 1 else round_rate(nxt)
            else:
                self.next = round_rate((self.lo + self.hi) / 2)
        if self.next is not None and self.lo is not None and self.hi is not None \
                and not (self.lo < self.next < self.hi):
            self.next = None


def round_rate(rate: float) -> float:
    """A rate a person would pick: multiples of 5 from 100, whole from 20, else 0.1."""
    if rate >= 100:
        return float(round(rate / 5) * 5)
    if rate >= 20:
        return float(round(rate))
    return round(rate, 1)
