"""Questions about the decisions that change nothing: one tag as the inspector shows it,
the review queue, and how a text's score is judged (a tag's vector and threshold, or
what a new tag of that text would start from)."""

from __future__ import annotations

from typing import Any

import numpy as np

from albumtagger.errors import UserError
from albumtagger.library.tag_names import clean_name
from albumtagger.tagging import thresholds as th
from albumtagger.tagging.decision_state import DecisionState
from albumtagger.tagging.priors import prior_thresholds, search_cutoff, tag_stats
from albumtagger.tagging.results import TagInspection, source_text


class Inspection(DecisionState):
    """The decision state, asked about."""

    def tag_report(self, name: str, near: int = 12) -> TagInspection:
        """One tag as the inspector shows it: threshold and where it comes from, its
        scores over the library, the user's answers, the photos either side of the
        threshold and how many photos carry it."""
        self._sync()
        tag = self._tag_row(name)
        j = self._column(tag.id)
        ways = self.store.count_carriers_by_way(tag.id)
        carries = sum(ways.values())
        pref = self.policy.preference
        empty = np.zeros(0, dtype=np.float32)
        if j is None or not self._has_matrix():
            source = "pinned" if tag.pinned is not None else "not_scored"
            return TagInspection(
                name=tag.name,
                prompts=tag.prompts,
                threshold=tag.pinned if tag.pinned is not None else tag.threshold,
                source=source,
                source_text=source_text(source, tag.pinned, 0, 0, self.policy),
                preference=pref,
                pinned=tag.pinned,
                answers={"yes": 0, "no": 0},
                scores=empty,
                yes_scores=empty,
                no_scores=empty,
                above=[],
                below=[],
                carries=carries,
                carried_by=ways,
            )
        ids, scores = self._library()
        threshold = float(self.thresholds()[j])
        assert self._stats is not None
        column = np.ascontiguousarray(scores[:, j], dtype=np.float32)
        photo, tag_col, positive = self._feedback().labels()
        mine = tag_col == j
        yes = column[photo[mine & positive]]
        no = column[photo[mine & ~positive]]
        n = int(yes.size + no.size)
        pinned = tag.pinned
        source = "pinned" if pinned is not None else ("learned" if n else "prior")
        passing = column >= np.float32(threshold)  # as the decisions compare
        order = np.argsort(column, kind="stable")
        first_above = int(np.count_nonzero(~passing))
        above_rows = order[first_above : first_above + near]
        below_rows = order[max(first_above - near, 0) : first_above][::-1]
        return TagInspection(
            name=tag.name,
            prompts=tag.prompts,
            threshold=threshold,
            source=source,
            source_text=source_text(source, pinned, int(yes.size), int(no.size), self.policy),
            preference=pref,
            pinned=pinned,
            answers={"yes": int(yes.size), "no": int(no.size)},
            scores=column,
            yes_scores=yes.astype(np.float32),
            no_scores=no.astype(np.float32),
            above=[(int(ids[i]), float(column[i])) for i in above_rows],
            below=[(int(ids[i]), float(column[i])) for i in below_rows],
            carries=carries,
            median=float(self._stats.median[j]),
            scale=float(self._stats.scale[j]),
            carried_by=ways,
        )

    def review_queue(self, limit: int = 20) -> list[dict[str, Any]]:
        """Suggestions nearest to their tag's threshold, best first, for a quick yes/no."""
        self._sync()
        if not self._has_matrix():
            return []
        ids, scores = self._library()
        tags, _ = self._load_tags()
        thresholds = self.thresholds()
        user = self._user_state(ids)
        items = th.review_queue(scores, thresholds, user, limit, self.policy, stats=self._stats)
        paths = {r.id: r.path for r in self.store.photos(statuses=("ok",))}
        out = []
        for i, j, margin in items:
            path = paths.get(int(ids[i]))
            if path is None:  # missing photos are not worth asking about
                continue
            out.append(
                {
                    "photo_id": int(ids[i]),
                    "path": path,
                    "tag": tags[j].name,
                    "score": round(float(scores[i, j]), 4),
                    "threshold": round(float(thresholds[j]), 4),
                    "margin": round(margin, 4),
                    "suggested": bool(margin >= 0),
                }
            )
        return out

    def review_remaining(self) -> dict[str, int]:
        """Questions review has left, by tag name (tags with none left are not listed);
        see `thresholds.review_remaining`."""
        self._sync()
        if not self._has_matrix():
            return {}
        ids, scores = self._library()
        tags, _ = self._load_tags()
        counts = th.review_remaining(
            scores,
            self._silenced(self.thresholds()),
            self._user_state(ids),
            self.policy,
            stats=self._stats,
        )
        return {tags[j].name: int(n) for j, n in enumerate(counts) if n > 0}

    def tag_vector(self, text: str) -> np.ndarray | None:
        """The unit vector of the scored tag named `text` (mean of its prompts), or None."""
        self._sync()
        try:
            tag = self.store.tag_by_name(clean_name(text))
        except UserError:
            return None
        j = None if tag is None else self._column(tag.id)
        if j is None:
            return None
        _, matrix = self._load_tags()
        return matrix[j].copy()

    def search_cutoff(self, column: np.ndarray) -> float:
        """The relevance cutoff of a search whose scores over the library's photos are
        `column`: what a new tag of the query would start from (its prior, with the
        library's controller base), as `text_policy` judges a text that is not a tag."""
        self._sync()
        kinds = self._feedback().controller_kinds if self._has_matrix() else np.zeros(0)
        return search_cutoff(column, self.policy, base=th.controller_base(kinds, self.policy))

    def text_policy(self, text: str, column: np.ndarray | None) -> tuple[float, float, float, str]:
        """(threshold, median, scale, rule) to judge a text's score by.

        rule "tag": `text` is a scored tag of the library: its threshold and score
        statistics. rule "new tag": what a tag with this text would start from (its
        prior from `column`, the text's scores over the library's photos, with the
        library's controller base). rule "base": no scores to go by
        (`thresholds.standalone_policy`).
        """
        self._sync()
        try:
            name = clean_name(text)
        except UserError:
            name = ""
        tag = self.store.tag_by_name(name) if name else None
        j = None if tag is None else self._column(tag.id)
        if j is not None and self._has_matrix():
            thresholds = self.thresholds()
            assert self._stats is not None
            return (
                float(thresholds[j]),
                float(self._stats.median[j]),
                float(self._stats.scale[j]),
                "tag",
            )
        if column is None or column.size == 0:
            return (*th.standalone_policy(self.policy), "base")
        scores = np.asarray(column, dtype=np.float32).reshape(-1, 1)
        stats = tag_stats(scores)
        kinds = self._feedback().controller_kinds if self._has_matrix() else np.zeros(0)
        base = th.controller_base(kinds, self.policy)
        prior = prior_thresholds(scores, self.policy, base=base, stats=stats)
        return float(prior[0]), float(stats.median[0]), float(stats.scale[0]), "new tag"
