"""Thresholds by hand: pin a tag's threshold (or give it back to learning), and see
first what a pin would do.

A pinned threshold stays through re-fits, full re-decisions and new photos; answers are
still recorded (they teach the tag once it learns again). Pins are not part of the
corrections' undo: pinning the previous value again goes back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from albumtagger.errors import UsageError
from albumtagger.library.db.store import SuggestionChanges
from albumtagger.tagging import thresholds as th
from albumtagger.tagging.decision_state import DecisionState, UserCells
from albumtagger.tagging.results import ThresholdChange


def _threshold_value(value: float | None) -> float | None:
    """A threshold given by hand, checked: a finite score in [-1, 1] (cosines)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"A threshold is a number, not {value!r}.") from None
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise UsageError(f"A threshold is a score between -1 and 1, not {value!r}.")
    return number


class Pins(DecisionState):
    """The decision state, with thresholds set by hand."""

    def pin_threshold(self, name: str, value: float | None) -> ThresholdChange:
        """Pin a tag's threshold at `value` (None: give it back to learning) and decide
        the tag again across the library at once, in one transaction.

        User decisions are untouched; the cap of tags per photo and the fallback apply as
        always. Pin `previous_pin` again to go back.
        """
        value = _threshold_value(value)
        with self._atomic(durable=True):
            tag = self._tag_row(name)
            j = self._column(tag.id)
            before_ids = self.store.carrier_ids(tag.id)
            before = None if j is None else float(self.thresholds()[j])
            with self._writing_tags():
                self.store.set_pinned_threshold(tag.id, value)
            after = value
            changes = SuggestionChanges()
            if j is not None and self._has_matrix():
                changes = self._redecide_tags([j], pinned=value)
                after = float(self.thresholds()[j])
                self._bump_generation()
            after_ids = self.store.carrier_ids(tag.id)
            changed = sorted(changes.photo_ids())
            return ThresholdChange(
                tag=tag.name,
                threshold_before=before,
                threshold_after=after,
                pinned=value,
                previous_pin=tag.pinned,
                gained=int(np.setdiff1d(after_ids, before_ids).size),
                lost=int(np.setdiff1d(before_ids, after_ids).size),
                carries=int(after_ids.size),
                photos_changed=len(changed),
                changed_photo_ids=tuple(changed),
            )

    def threshold_preview(self, name: str, value: float | None) -> dict[str, Any]:
        """What `pin_threshold(name, value)` would do, without doing it: "carries_now",
        "carries_after", "gain", "lose" (photos), "threshold_now", "threshold_after"
        (None: what learning gives). Re-decides only the photos that can change, from
        the score matrix in memory."""
        value = _threshold_value(value)
        self._sync()
        tag = self._tag_row(name)
        j = self._column(tag.id)
        carries = self.store.count_carriers(tag.id)
        out: dict[str, Any] = {
            "tag": tag.name,
            "threshold_now": tag.pinned if tag.pinned is not None else tag.threshold,
            "threshold_after": value,
            "carries_now": carries,
            "carries_after": carries,
            "gain": 0,
            "lose": 0,
        }
        if j is None or not self._has_matrix():
            return out
        ids, scores = self._library()
        thresholds = self._silenced(self.thresholds())
        if value is None:
            value = float(th.fit_thresholds(scores, self._feedback(), self.policy, tags=[j])[0])
        assert self._stats is not None
        cells = self._user_cells(ids)
        gain, lose = th.threshold_change(
            scores,
            thresholds,
            cells,
            self._current_decisions(ids, cells),
            j,
            value,
            self.policy,
            stats=self._stats,
            first=self._first(),
        )
        out.update(
            threshold_now=float(self.thresholds()[j]),
            threshold_after=float(value),
            carries_after=carries + int(gain.size) - int(lose.size),
            gain=int(gain.size),
            lose=int(lose.size),
        )
        return out

    def _current_decisions(self, ids: np.ndarray, cells: UserCells) -> th.Decisions:
        """The decisions under the thresholds in effect and the user's decisions `cells`
        (kept until either changes)."""
        decisions = self._kept_decisions(cells)
        if decisions is None:
            _, scores = self._library()
            decisions = th.decide(
                scores,
                self._silenced(self.thresholds()),
                self._user_state(ids, cells),
                self.policy,
                stats=self._stats,
                first=self._first(),
            )
            self._keep_decisions(decisions, cells)
        return decisions
