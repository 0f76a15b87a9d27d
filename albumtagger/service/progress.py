"""When will every photo have tags, and when will they all be refined? No Qt here.

`TimeToTags` follows a session's progress: photos left for the first pass (pending
photos), photos left to refine (first-pass vectors without a refined one, plus what
the first pass still has to do), and the photos per second of each budget, measured
as the work runs. Before the refinement has run, its time per photo is the first
pass's with the time in the model scaled by the token budget ratio (the model's cost
is about proportional to a photo's image tokens; reading and deciding are not).
Time spent paused does not count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

COARSE_PHASE = "first pass"
FULL_PHASES = ("tag", "refine")
"""Phases at the full budget: tagging without a first pass, and refining."""
HALF_LIFE_S = 300.0
"""A measured rate weighs the last five minutes of work as much as all before."""


@dataclass
class _Rate:
    """Photos per second of one budget: sums of photos, active seconds and seconds in
    the model, older intervals decayed by `HALF_LIFE_S`; the first batch measured (the
    model and the readers warming up) does not count."""

    photos: float = 0.0
    seconds: float = 0.0
    model_s: float = 0.0
    warm: bool = False

    def add(self, photos: int, seconds: float, model_s: float) -> None:
        if seconds <= 0:
            return
        if photos and not self.warm:
            self.warm = True
            return
        decay = 0.5 ** (seconds / HALF_LIFE_S)
        self.photos = self.photos * decay + photos
        self.seconds = self.seconds * decay + seconds
        self.model_s = self.model_s * decay + min(model_s, seconds)

    def value(self, model_cost: float = 1.0) -> float | None:
        """Photos per second, with the time in the model `model_cost` times what it was."""
        seconds = self.seconds + self.model_s * (model_cost - 1.0)
        return self.photos / seconds if self.photos > 0 and seconds > 0 else None


class TimeToTags:
    """Estimates of the time left until every photo has first-pass tags and until every
    photo is refined. Feed it each job's progress (`observe`); `pause`, `resume` may be
    called from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_at: float | None = None
        self._paused_s = 0.0
        self._rates = {"coarse": _Rate(), "full": _Rate()}
        self._last: tuple[str, int, int, float, float] | None = None
        self._tagging = COARSE_PHASE
        self.first_pass_left = 0
        self.unrefined = 0
        """Photos with a first-pass vector and no refined one."""
        self.cost_ratio = 1.0
        """A photo's cost at the full budget over its cost at the first pass's."""

    # -- the clock ----------------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            if self._paused_at is None:
                self._paused_at = self._clock()

    def resume(self) -> None:
        with self._lock:
            if self._paused_at is not None:
                self._paused_s += self._clock() - self._paused_at
                self._paused_at = None

    def _now(self) -> float:
        """Seconds of the clock that were not paused."""
        with self._lock:
            now = self._paused_at if self._paused_at is not None else self._clock()
            return now - self._paused_s

    # -- what is left, and how fast it goes -----------------------------------------

    def set_backlog(self, unrefined: int, cost_ratio: float) -> None:
        """Counted from the store when tagging starts: photos waiting to be refined, and
        the refinement's cost per photo relative to the first pass (the budgets' token
        ratio)."""
        self.unrefined = max(0, unrefined)
        self.cost_ratio = max(1.0, cost_ratio)

    def observe(self, phase: str, done: int, total: int, model_s: float = 0.0) -> None:
        """A job's progress: `done` of `total` photos in `phase`, `model_s` seconds in
        the model so far (in this job: a job that follows another starts again at 0)."""
        if phase != COARSE_PHASE and phase not in FULL_PHASES:
            return
        now = self._now()
        last = self._last
        if last is not None and last[0] == phase and last[2] == total and last[1] <= done:
            in_model = model_s - last[4] if model_s >= last[4] else model_s
            self._rates[_budget(phase)].add(done - last[1], now - last[3], in_model)
            if phase == COARSE_PHASE:
                self.unrefined += done - last[1]
        self._last = (phase, done, total, now, model_s)
        if phase == "refine":
            self.unrefined = total - done
        else:
            self._tagging = phase
            self.first_pass_left = total - done

    def rate(self, budget: str) -> float | None:
        """Photos per second measured at a budget ("coarse" or "full"); at the full
        budget before it was measured, the first pass's with its time in the model
        times the cost ratio."""
        rate = self._rates[budget].value()
        if rate is None and budget == "full":
            return self._rates["coarse"].value(self.cost_ratio)
        return rate

    def estimate(self) -> tuple[float | None, float | None]:
        """(seconds until every photo has first-pass tags, seconds until every photo is
        refined: the first pass's time included); None where no rate is known yet."""
        tags: float | None = 0.0
        if self.first_pass_left:
            rate = self.rate(_budget(self._tagging))
            tags = self.first_pass_left / rate if rate else None
        to_refine = self.unrefined + (self.first_pass_left if self._tagging == COARSE_PHASE else 0)
        if not to_refine:
            return tags, tags
        full = self.rate("full")
        if tags is None or not full:
            return tags, None
        return tags, tags + to_refine / full


def _budget(phase: str) -> str:
    return "coarse" if phase == COARSE_PHASE else "full"
