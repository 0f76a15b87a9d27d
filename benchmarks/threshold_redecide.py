"""Time re-deciding tags after a correction on a large library; print JSON.

Default 100k photos x 300 tags (scores from the threshold_sim scenario). Measured:

- one tag: refit that tag's threshold after a new feedback event, then `redecide_tags`
  for it (only the rows that can change), over several random tags;
- all tags: `redecide_tags` with every threshold changed, and a full `decide`;
- baselines in the same run: a per-photo Python loop (on a subset, scaled up) and a
  vectorised decide that fully argsorts every photo's tags;
- checks: the fast path equals a full `decide`, and both baselines agree with it.

Example: python benchmarks/threshold_redecide.py --photos 100000 --tags 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from threshold_sim import make_scenario

from albumtagger.tagging.priors import prior_thresholds, tag_stats
from albumtagger.tagging.thresholds import (
    STATE_FALLBACK,
    STATE_SUGGESTED,
    STATE_USER,
    USER_ACCEPTED,
    USER_REJECTED,
    Feedback,
    ThresholdSettings,
    decide,
    fit_thresholds,
    redecide_tags,
    rows_to_redecide,
)


def naive_decide_rows(
    scores: np.ndarray, thresholds: np.ndarray, user: np.ndarray, settings: ThresholdSettings
) -> np.ndarray:
    """Reference decision states, one photo at a time in plain Python."""
    th = [float(x) for x in thresholds.astype(scores.dtype)]
    low = [
        float(x)
        for x in np.minimum(
            thresholds.astype(scores.dtype),
            thresholds.astype(scores.dtype) * np.asarray(settings.fallback_factor, scores.dtype),
        )
    ]
    n_tags = scores.shape[1]
    out = np.zeros(scores.shape, dtype=np.int8)
    for r in range(scores.shape[0]):
        s = scores[r].tolist()
        u = user[r].tolist()
        accepted = [t for t in range(n_tags) if u[t] == USER_ACCEPTED]
        passed = [t for t in range(n_tags) if u[t] == 0 and s[t] >= th[t]]
        passed.sort(key=lambda t: (-(s[t] - th[t]), t))
        slots = max(settings.max_tags - len(accepted), 0)
        for t in passed[:slots]:
            out[r, t] = STATE_SUGGESTED
        if len(accepted) + len(passed) < settings.min_tags:
            need = min(settings.fallback_tags, settings.max_tags) - len(accepted) - len(passed)
            taken = set(passed)
            rest = [t for t in range(n_tags) if u[t] == 0 and t not in taken and s[t] >= low[t]]
            rest.sort(key=lambda t: (-(s[t] - th[t]), t))
            for t in rest[: max(need, 0)]:
                out[r, t] = STATE_FALLBACK
        for t in accepted:
            out[r, t] = STATE_USER
    return out


def argsort_decide(
    scores: np.ndarray, thresholds: np.ndarray, user: np.ndarray, settings: ThresholdSettings
) -> np.ndarray:
    """Vectorised baseline: a full stable argsort of every photo's tags by margin."""
    th = thresholds.astype(scores.dtype)
    low = np.minimum(th, th * np.asarray(settings.fallback_factor, scores.dtype))
    accepted = user == USER_ACCEPTED
    auto = user == 0
    passed = auto & (scores >= th)
    key = scores - th
    order = np.argsort(np.where(passed, -key, np.inf), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :], axis=1)
    n_acc = accepted.sum(1)
    n_pass = passed.sum(1)
    slots = np.maximum(settings.max_tags - n_acc, 0)
    chosen = passed & (rank < slots[:, None])
    cand = auto & ~passed & (scores >= low)
    order = np.argsort(np.where(cand, -key, np.inf), axis=1, kind="stable")
    np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :], axis=1)
    need = min(settings.fallback_tags, settings.max_tags) - n_acc - n_pass
    fb = (n_acc + n_pass < settings.min_tags)[:, None] & cand & (rank < need[:, None])
    state = np.zeros(scores.shape, dtype=np.int8)
    state[chosen] = STATE_SUGGESTED
    state[fb] = STATE_FALLBACK
    state[accepted] = STATE_USER
    return state


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=10, help="one-tag corrections timed")
    parser.add_argument("--naive-photos", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    settings = ThresholdSettings()
    rng = np.random.default_rng(args.seed)
    (scores, truth), gen_s = _timed(make_scenario, args.photos, args.tags, args.seed)
    stats, stats_s = _timed(tag_stats, scores)

    # a library with some history: 5 labels per tag, 0.1% of cells decided by the user
    user = np.zeros(scores.shape, dtype=np.int8)
    marked = rng.random(scores.shape) < 0.001
    user[marked] = np.where(truth[marked], USER_ACCEPTED, USER_REJECTED)
    photos = rng.integers(0, args.photos, 5 * args.tags)
    tags = np.repeat(np.arange(args.tags), 5)
    events = [
        (int(p), int(t), bool(truth[p, t]), False, True) for p, t in zip(photos, tags, strict=True)
    ]
    for p, t, pos, _, _ in events:
        user[p, t] = USER_ACCEPTED if pos else USER_REJECTED
    feedback = Feedback.from_events(events)
    thresholds, fit_all_s = _timed(fit_thresholds, scores, feedback, settings, stats=stats)
    previous, decide_s = _timed(decide, scores, thresholds, user, settings, stats=stats)

    # one tag: a new correction, refit that tag, re-decide it
    fit_one, redecide_one, rows_one = [], [], []
    equal = True
    current = previous
    for i in range(args.repeats):
        t = int(rng.integers(args.tags))
        p = int(rng.integers(args.photos))
        answer = bool(truth[p, t])
        events.append((p, t, answer, bool(current.state[p, t] == STATE_SUGGESTED), False))
        user[p, t] = USER_ACCEPTED if answer else USER_REJECTED
        feedback = Feedback.from_events(events)
        value, s1 = _timed(fit_thresholds, scores, feedback, settings, stats=stats, tags=[t])
        thresholds[t] = value[0]
        rows_one.append(
            int(rows_to_redecide(scores, thresholds, user, current, [t], settings).size)
        )
        new, s2 = _timed(
            redecide_tags, scores, thresholds, user, current, [t], settings, stats=stats
        )
        fit_one.append(s1)
        redecide_one.append(s2)
        if i < 3:
            full = decide(scores, thresholds, user, settings, stats=stats)
            equal &= np.array_equal(full.state, new.state)
            equal &= np.array_equal(full.confidence, new.confidence)
        current = new

    # all tags: every threshold changes (e.g. a new preference)
    shifted = thresholds * (1.0 + 0.05 * rng.standard_normal(args.tags))
    all_tags = np.arange(args.tags)
    new_all, redecide_all_s = _timed(
        redecide_tags, scores, shifted, user, current, all_tags, settings, stats=stats
    )
    full_all, decide_all_s = _timed(decide, scores, shifted, user, settings, stats=stats)
    equal &= np.array_equal(full_all.state, new_all.state)
    equal &= np.array_equal(full_all.confidence, new_all.confidence)
    priors_s = _timed(prior_thresholds, scores, settings, stats=stats)[1]

    # baselines
    arg_state, argsort_s = _timed(argsort_decide, scores, shifted, user, settings)
    n_naive = min(args.naive_photos, args.photos)
    naive_state, naive_s = _timed(
        naive_decide_rows, scores[:n_naive], shifted, user[:n_naive], settings
    )
    naive_scaled = naive_s * args.photos / n_naive

    out = {
        "photos": args.photos,
        "tags": args.tags,
        "cpus": os.cpu_count(),
        "generate_s": round(gen_s, 3),
        "tag_stats_s": round(stats_s, 3),
        "prior_thresholds_s": round(priors_s, 3),
        "fit_all_tags_s": round(fit_all_s, 3),
        "one_tag": {
            "fit_s_median": round(statistics.median(fit_one), 4),
            "redecide_s_median": round(statistics.median(redecide_one), 4),
            "redecide_s_max": round(max(redecide_one), 4),
            "total_s_max": round(max(a + b for a, b in zip(fit_one, redecide_one, strict=True)), 4),
            "rows_redecided_median": int(statistics.median(rows_one)),
        },
        "all_tags": {
            "redecide_s": round(redecide_all_s, 3),
            "decide_s": round(decide_all_s, 3),
            "first_decide_s": round(decide_s, 3),
        },
        "baselines": {
            "full_argsort_all_tags_s": round(argsort_s, 3),
            "python_loop_all_tags_s_scaled": round(naive_scaled, 2),
            "python_loop_photos_timed": n_naive,
            "one_tag_without_fast_path_s": round(decide_all_s, 3),
        },
        "checks": {
            "redecide_equals_decide": bool(equal),
            "argsort_equals_decide": bool(np.array_equal(arg_state, full_all.state)),
            "python_loop_equals_decide": bool(
                np.array_equal(naive_state, full_all.state[:n_naive])
            ),
        },
        "speedups": {
            "one_tag_vs_full_decide": round(decide_all_s / statistics.median(redecide_one), 1),
            "all_tags_vs_argsort": round(argsort_s / decide_all_s, 1),
            "all_tags_vs_python_loop": round(naive_scaled / decide_all_s, 1),
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
