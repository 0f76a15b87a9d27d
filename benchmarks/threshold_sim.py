"""Simulate a user teaching the thresholds through the review queue; print JSON.

Scores and truth come from `--scores S.npy --truth T.npy` ([photos x tags] float scores
and boolean truth) or from built-in scenario families (`--family NAME`, repeatable, or
`all`, the default), each run for every seed of `--seeds`. All are GME-like cosine scores
(about -0.1..0.6) with a different background offset per tag:

- baseline: prevalence 0.4%..15%, Student-t scores, look-alike negatives for some tags
  and a heavy-tailed per-photo offset (`make_scenario`);
- prevalence: prevalence from 0.1% to 30% (log-uniform);
- heavy_tails: Student-t backgrounds and positives with 2.5..4 degrees of freedom;
- light_tails: backgrounds lighter-tailed than a Gaussian (generalised Gaussian, power
  3..6);
- lookalikes: tags in pairs whose positives score 55..90% of the way up on each other;
- correlated: tags in groups that co-occur (a photo's scene switches on a group), a
  per-photo offset shared by all tags and one shared within each group.

A simulated user answers the review queue truthfully for `--corrections` answers per tag
on average (refitting after every `--batch` answers). Reported (micro-F1, precision,
recall over all photo x tag cells, threshold decisions score >= threshold):

- fixed_base: the base threshold 0.25 for every tag;
- best_global_hindsight: the single threshold with the best micro-F1, chosen knowing truth;
- prior_only: the per-tag distribution prior, before any correction;
- controller_only: one global threshold moved by the tutorial's controller, fed the same
  number of review answers as if they were ordinary corrections (the policy keeps review
  answers away from the controller; this line shows why);
- policy: the per-tag thresholds after the corrections (`policy_with_overrides` also
  counts the user's answers; `policy_decide` is the full per-photo decision with the cap
  and the fallback);
- per_tag_hindsight: each tag's own F1-optimal threshold, chosen knowing truth (the
  bar); per_tag_hindsight_micro: per-tag thresholds jointly maximising micro-F1 (an
  upper bound for any per-tag thresholds).

The JSON has `runs` (one per family and seed), `families` (per family: the mean of
every result over its seeds, and the gaps to `best_global_hindsight`) and `summary`
(worst and mean gaps over all runs and families).

Example: python benchmarks/threshold_sim.py --corrections 4 --seeds 0,1,2 --family all
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albumtagger.tagging.priors import prior_thresholds, tag_stats
from albumtagger.tagging.thresholds import (
    STATE_SUGGESTED,
    USER_ACCEPTED,
    USER_NONE,
    USER_REJECTED,
    Feedback,
    ThresholdSettings,
    controller_base,
    decide,
    fit_thresholds,
    review_queue,
)

_CHUNK = 20000


def make_scenario(
    n_photos: int = 10000, n_tags: int = 60, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic GME-like cosine scores (float32) and truth (bool), [photos x tags].

    Per tag: prevalence 0.4%..15% (log-uniform); negatives around 0.10..0.24 with
    Student-t noise (3..6 degrees of freedom); positives 0.05..0.16 higher with wider
    t noise; 40% of tags have 1..6% look-alike negatives 50..90% of the way to the
    positives; plus a heavy-tailed per-photo offset.
    """
    seq = np.random.SeedSequence(seed)
    tag_seed, *chunk_seeds = seq.spawn(1 + -(-n_photos // _CHUNK))
    rng = np.random.default_rng(tag_seed)
    prevalence = np.exp(rng.uniform(np.log(0.004), np.log(0.15), n_tags))
    neg_mu = rng.uniform(0.10, 0.24, n_tags)
    neg_sd = rng.uniform(0.012, 0.03, n_tags)
    neg_df = rng.uniform(3.0, 6.0, n_tags)
    sep = rng.uniform(0.05, 0.16, n_tags)
    pos_sd = rng.uniform(0.02, 0.045, n_tags)
    pos_df = rng.uniform(3.0, 8.0, n_tags)
    look_frac = np.where(rng.random(n_tags) < 0.4, rng.uniform(0.01, 0.06, n_tags), 0.0)
    look_at = rng.uniform(0.5, 0.9, n_tags)

    scores = np.empty((n_photos, n_tags), dtype=np.float32)
    truth = np.empty((n_photos, n_tags), dtype=bool)
    for i, chunk_seed in enumerate(chunk_seeds):
        rows = slice(i * _CHUNK, min((i + 1) * _CHUNK, n_photos))
        r = np.random.default_rng(chunk_seed)
        shape = (rows.stop - rows.start, n_tags)
        is_pos = r.random(shape) < prevalence
        lookalike = ~is_pos & (r.random(shape) < look_frac)
        offset = 0.01 * r.standard_t(5.0, (shape[0], 1))
        neg = neg_mu + neg_sd * r.standard_t(neg_df, shape)
        look = neg_mu + look_at * sep + neg_sd * r.standard_t(neg_df, shape)
        pos = neg_mu + sep + pos_sd * r.standard_t(pos_df, shape)
        chunk = np.where(is_pos, pos, np.where(lookalike, look, neg)) + offset
        scores[rows] = np.clip(chunk, -1.0, 1.0)
        truth[rows] = is_pos
    return scores, truth


def _t_noise(r: np.random.Generator, df: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Student-t noise per column (degrees of freedom `df` [tags]), unit scale."""
    return r.standard_t(np.broadcast_to(df, shape))


def _light_noise(r: np.random.Generator, power: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Generalised Gaussian exp(-|x|^p) noise per column, scaled to unit variance."""
    p = np.broadcast_to(power, shape)
    x = r.gamma(1.0 / p) ** (1.0 / p) * np.where(r.random(shape) < 0.5, -1.0, 1.0)
    gamma = np.vectorize(math.gamma)
    sd = np.sqrt(gamma(3.0 / power) / gamma(1.0 / power))
    return x / sd


def make_family(
    family: str, n_photos: int = 10000, n_tags: int = 60, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float32) and truth (bool), [photos x tags], of one scenario family.

    Every family: background offset 0.0..0.22 per tag, background sd 0.012..0.035,
    positives 0.06..0.18 above their background, a small per-photo offset. See the module
    docstring for what each family changes.
    """
    if family == "baseline":
        return make_scenario(n_photos, n_tags, seed)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng([FAMILIES.index(family), seed])
    shape = (n_photos, n_tags)
    prevalence = np.exp(rng.uniform(np.log(0.004), np.log(0.15), n_tags))
    neg_mu = rng.uniform(0.0, 0.22, n_tags)
    neg_sd = rng.uniform(0.012, 0.035, n_tags)
    neg_df = rng.uniform(4.0, 10.0, n_tags)
    sep = rng.uniform(0.06, 0.18, n_tags)
    pos_sd = rng.uniform(0.02, 0.045, n_tags)
    pos_df = rng.uniform(4.0, 10.0, n_tags)
    offset_sd = 0.008
    if family == "prevalence":
        prevalence = np.exp(rng.uniform(np.log(0.001), np.log(0.30), n_tags))
    elif family == "heavy_tails":
        neg_df = rng.uniform(2.5, 4.0, n_tags)
        pos_df = rng.uniform(2.5, 4.0, n_tags)
    r = np.random.default_rng([FAMILIES.index(family), seed, 1])
    if family == "light_tails":
        neg_noise = _light_noise(r, rng.uniform(3.0, 6.0, n_tags), shape)
        pos_noise = _light_noise(r, rng.uniform(2.0, 4.0, n_tags), shape)
    else:
        neg_noise = _t_noise(r, neg_df, shape) * np.sqrt((neg_df - 2) / neg_df)
        pos_noise = _t_noise(r, pos_df, shape) * np.sqrt((pos_df - 2) / pos_df)
        if family == "heavy_tails":  # keep the scale of the bulk, not the variance
            neg_noise = _t_noise(r, neg_df, shape)
            pos_noise = _t_noise(r, pos_df, shape)
    pos_score = neg_mu + sep + pos_sd * pos_noise
    score = neg_mu + neg_sd * neg_noise
    offset = offset_sd * r.standard_t(5.0, (n_photos, 1))

    if family == "correlated":
        n_groups = max(1, n_tags // 5)
        group = rng.integers(0, n_groups, n_tags)
        group_rate = rng.uniform(0.02, 0.15, n_groups)
        active = r.random((n_photos, n_groups)) < group_rate
        within = rng.uniform(0.4, 0.9, n_tags)
        truth = np.where(active[:, group], r.random(shape) < within, r.random(shape) < 0.002)
        # a scene lifts every tag of its group (context) and photos share an offset
        context = (
            0.3 * sep * active[:, group] + 0.012 * r.standard_normal((n_photos, n_groups))[:, group]
        )
        offset = 0.015 * r.standard_t(4.0, (n_photos, 1)) + context
    else:
        truth = r.random(shape) < prevalence
    if family == "lookalikes":
        # pairs (2i, 2i+1): a photo with one tag scores 55..90% of the way up on the other
        mate = np.arange(n_tags) ^ 1
        mate[mate >= n_tags] = n_tags - 1
        look_at = rng.uniform(0.55, 0.9, n_tags)
        mate_pos = truth[:, mate] & ~truth
        look = neg_mu + look_at * sep + neg_sd * neg_noise
        score = np.where(mate_pos, look, score)
    scores = np.where(truth, pos_score, score) + offset
    return np.clip(scores, -1.0, 1.0).astype(np.float32), truth


FAMILIES = ("baseline", "prevalence", "heavy_tails", "light_tails", "lookalikes", "correlated")


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"micro_f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4)}


def _best_cut(scores: np.ndarray, truth: np.ndarray) -> float:
    """Threshold maximising F1 of `scores >= t` on one flat array."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], truth[order]
    tp = np.concatenate(([0], np.cumsum(y)))
    j = np.arange(s.size + 1)
    f1 = 2 * tp / np.maximum(j + y.sum(), 1)
    # only cut between distinct scores
    valid = np.ones(s.size + 1, dtype=bool)
    valid[1:-1] = s[1:] != s[:-1]
    f1[~valid] = -1
    best = int(np.argmax(f1))
    if best == 0:
        return float(s[0]) + 1e-6
    return float(s[best - 1])


def best_global_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    return _best_cut(scores.ravel(), truth.ravel())


def per_tag_hindsight(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.array([_best_cut(scores[:, t], truth[:, t]) for t in range(scores.shape[1])])


def micro_hindsight(scores: np.ndarray, truth: np.ndarray, rounds: int = 20) -> np.ndarray:
    """Per-tag thresholds that jointly maximise micro-F1, knowing truth (Dinkelbach).

    For a target F, each tag independently keeps the cut maximising 2 TP - F * kept; the
    resulting micro-F1 becomes the next F until it stops improving.
    """
    cols = []
    for t in range(scores.shape[1]):
        order = np.argsort(-scores[:, t], kind="stable")
        s, y = scores[order, t], truth[order, t]
        valid = np.ones(s.size + 1, dtype=bool)
        valid[1:-1] = s[1:] != s[:-1]
        cols.append((s, np.concatenate(([0], np.cumsum(y))), valid))
    total_pos = int(truth.sum())
    f = 0.0
    best = np.zeros(scores.shape[1])
    for _ in range(rounds):
        tp = kept = 0
        cuts = []
        for s, cum, valid in cols:
            gain = 2.0 * cum - f * np.arange(s.size + 1)
            gain[~valid] = -np.inf
            j = int(np.argmax(gain))
            tp += int(cum[j])
            kept += j
            cuts.append(float(s[0]) + 1e-6 if j == 0 else float(s[j - 1]))
        new_f = 2.0 * tp / max(kept + total_pos, 1)
        if new_f <= f + 1e-12:
            break
        f, best = new_f, np.array(cuts)
    return best


def _passes(scores: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return scores >= np.asarray(thresholds, dtype=scores.dtype)


def run_user(
    scores: np.ndarray,
    truth: np.ndarray,
    settings: ThresholdSettings,
    n_answers: int,
    batch: int,
    *,
    per_tag: bool,
) -> tuple[np.ndarray, np.ndarray, Feedback]:
    """A truthful user answering the review queue; returns thresholds, user state, feedback.

    per_tag=True: the policy (answers are review events, per-tag fits after each batch).
    per_tag=False: the tutorial's controller alone: one global threshold, moved by the
    controller, which is fed the answers as if they were ordinary corrections.
    """
    n_tags = scores.shape[1]
    stats = tag_stats(scores)
    user = np.zeros(scores.shape, dtype=np.int8)
    events: list[tuple[int, int, bool, bool, bool]] = []
    feedback = Feedback.empty()
    if per_tag:
        thresholds = prior_thresholds(scores, settings, stats=stats)
    else:
        thresholds = np.full(n_tags, settings.base_threshold)
    base = controller_base(feedback.controller_kinds, settings)
    done = 0
    while done < n_answers:
        decisions = decide(scores, thresholds, user, settings, stats=stats)
        limit = min(batch, n_answers - done)
        queue = review_queue(scores, thresholds, user, limit, settings, stats=stats)
        if not queue:
            break
        touched = set()
        for photo, tag, _margin in queue:
            answer = bool(truth[photo, tag])
            suggested = bool(decisions.state[photo, tag] == STATE_SUGGESTED)
            events.append((photo, tag, answer, suggested, per_tag))
            user[photo, tag] = USER_ACCEPTED if answer else USER_REJECTED
            touched.add(tag)
        done += len(queue)
        feedback = Feedback.from_events(events)
        new_base = controller_base(feedback.controller_kinds, settings)
        if per_tag:
            refit = None if new_base != base else sorted(touched)
            values = fit_thresholds(scores, feedback, settings, stats=stats, tags=refit)
            if refit is None:
                thresholds = values
            else:
                thresholds[refit] = values
        else:
            thresholds = np.full(n_tags, new_base)
        base = new_base
    return thresholds, user, feedback


def simulate(
    scores: np.ndarray,
    truth: np.ndarray,
    corrections_per_tag: float,
    settings: ThresholdSettings | None = None,
    batch: int = 10,
) -> dict[str, object]:
    """All policies on one scores/truth pair; a JSON-ready dict."""
    settings = settings or ThresholdSettings()
    n_tags = scores.shape[1]
    n_answers = round(corrections_per_tag * n_tags)
    results: dict[str, dict[str, float]] = {}

    base = settings.base_threshold
    results["fixed_base"] = {**metrics(_passes(scores, base), truth), "threshold": base}
    g = best_global_threshold(scores, truth)
    results["best_global_hindsight"] = {
        **metrics(_passes(scores, g), truth),
        "threshold": round(g, 4),
    }
    prior = prior_thresholds(scores, settings)
    results["prior_only"] = metrics(_passes(scores, prior), truth)

    fixed = dataclasses.replace(settings, prior="fixed")
    th_c, _, _ = run_user(scores, truth, fixed, n_answers, batch, per_tag=False)
    results["controller_only"] = {
        **metrics(_passes(scores, th_c), truth),
        "threshold": round(float(th_c[0]), 4),
    }

    th, user, _ = run_user(scores, truth, settings, n_answers, batch, per_tag=True)
    pred = _passes(scores, th)
    results["policy"] = metrics(pred, truth)
    with_user = (pred & (user != USER_REJECTED)) | (user == USER_ACCEPTED)
    results["policy_with_overrides"] = metrics(with_user, truth)
    decided = decide(scores, th, user, settings).included()
    results["policy_decide"] = metrics(decided, truth)

    hind = per_tag_hindsight(scores, truth)
    results["per_tag_hindsight"] = metrics(_passes(scores, hind), truth)
    micro = micro_hindsight(scores, truth)
    results["per_tag_hindsight_micro"] = metrics(_passes(scores, micro), truth)

    policy_f1 = results["policy"]["micro_f1"]
    return {
        "photos": int(scores.shape[0]),
        "tags": int(n_tags),
        "corrections_per_tag": corrections_per_tag,
        "corrections": n_answers,
        "answered": int(np.count_nonzero(user != USER_NONE)),
        "results": results,
        "policy_minus_best_global": round(
            policy_f1 - results["best_global_hindsight"]["micro_f1"], 4
        ),
        "policy_over_per_tag_hindsight": round(
            policy_f1 / max(results["per_tag_hindsight"]["micro_f1"], 1e-12), 4
        ),
        "prior_minus_best_global": round(
            results["prior_only"]["micro_f1"] - results["best_global_hindsight"]["micro_f1"], 4
        ),
    }


_GAPS = ("policy_minus_best_global", "policy_over_per_tag_hindsight", "prior_minus_best_global")


def _spread(vals: list[float]) -> dict[str, float]:
    return {"min": min(vals), "mean": round(sum(vals) / len(vals), 4), "max": max(vals)}


def family_summary(runs: list[dict[str, object]]) -> dict[str, object]:
    """Mean of every result over a family's runs (micro-F1, precision, recall) and gaps."""
    results = [r["results"] for r in runs]
    mean = {
        key: {
            m: round(sum(float(res[key][m]) for res in results) / len(results), 4)
            for m in ("micro_f1", "precision", "recall")
        }
        for key in results[0]
    }
    best = mean["best_global_hindsight"]["micro_f1"]
    return {
        "seeds": [r.get("seed") for r in runs],
        "results": mean,
        "prior_minus_best_global": round(mean["prior_only"]["micro_f1"] - best, 4),
        "policy_minus_best_global": round(mean["policy"]["micro_f1"] - best, 4),
        "per_run": {key: _spread([float(r[key]) for r in runs]) for key in _GAPS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, help="[photos x tags] float scores (.npy)")
    parser.add_argument("--truth", type=Path, help="[photos x tags] boolean truth (.npy)")
    parser.add_argument(
        "--family",
        action="append",
        choices=(*FAMILIES, "all"),
        help="scenario family (repeatable; default all)",
    )
    parser.add_argument("--corrections", type=float, default=4.0, help="answers per tag")
    parser.add_argument("--photos", type=int, default=10000)
    parser.add_argument("--tags", type=int, default=60)
    parser.add_argument("--seeds", default="0", help="comma-separated scenario seeds")
    parser.add_argument("--batch", type=int, default=10, help="answers between refits")
    parser.add_argument("--prior", help="override the prior strategy")
    parser.add_argument("--preference", help="override the precision/recall preference")
    args = parser.parse_args(argv)

    settings = ThresholdSettings()
    if args.prior:
        settings.prior = args.prior
    if args.preference:
        settings.preference = args.preference
    settings.validate()

    runs = []
    families: dict[str, object] = {}
    start = time.perf_counter()
    if args.scores or args.truth:
        if not (args.scores and args.truth):
            parser.error("--scores and --truth go together")
        scores = np.load(args.scores).astype(np.float32)
        truth = np.load(args.truth).astype(bool)
        if scores.shape != truth.shape or scores.ndim != 2:
            parser.error("scores and truth must be [photos x tags] arrays of the same shape")
        runs.append(
            {
                "source": str(args.scores),
                **simulate(scores, truth, args.corrections, settings, args.batch),
            }
        )
    else:
        chosen = args.family or ["all"]
        names = list(FAMILIES) if "all" in chosen else list(dict.fromkeys(chosen))
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        for family in names:
            family_runs = []
            for seed in seeds:
                scores, truth = make_family(family, args.photos, args.tags, seed)
                family_runs.append(
                    {
                        "family": family,
                        "seed": seed,
                        **simulate(scores, truth, args.corrections, settings, args.batch),
                    }
                )
            runs += family_runs
            families[family] = family_summary(family_runs)
    out: dict[str, object] = {"settings": dataclasses.asdict(settings), "runs": runs}
    if families:
        out["families"] = families
    if len(runs) > 1:
        summary: dict[str, object] = {key: _spread([float(r[key]) for r in runs]) for key in _GAPS}
        if families:
            fam = families.values()
            summary["family_prior_minus_best_global"] = _spread(
                [float(f["prior_minus_best_global"]) for f in fam]
            )
            summary["family_policy_minus_best_global"] = _spread(
                [float(f["policy_minus_best_global"]) for f in fam]
            )
            summary["table"] = {
                name: {
                    key: f["results"][key]["micro_f1"]
                    for key in ("prior_only", "policy", "best_global_hindsight")
                }
                for name, f in families.items()
            }
        out["summary"] = summary
    out["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
