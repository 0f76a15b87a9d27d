"""Simulate a user teaching tags their look from answers and example photos; print JSON.

Two modes:

- `--make DIR --family NAME --seed S [--quick]` writes a scenario: `images.npy` (float32
  N x D, unit rows), `texts.npy` (float32 K x D, unit rows), `truth.npy` (bool N x K) and
  `wordless.npy` (bool K: tags whose text vector says nothing about their look).
- `--scenario DIR --answers N --examples E --json` runs the project's own code on it:
  `tagging.look` (the learned look), `tagging.thresholds` (priors, per-tag thresholds,
  `review_queue` to choose the questions, `decide` with the default policy). Worded tags
  start from their text vectors and get N answers each from the review queue (answered
  from truth); wordless tags start from E random true photos as examples, then N answers.

Printed (micro-F1 over the photo x tag cells: a tag is on a photo when it passes its
threshold or the user gave it; `decide` repeats the figures for the full policy, with
the cap of `max_tags` and the fallback that fills photos up to `fallback_tags`):
`worded`: `prior` (no answers), `thresholds_only` (today: the same kind of answers move
only the thresholds), `learned` (the answers also teach the look); `wordless`: `learned`;
`zero_tag_rate`: of the photos with at least one true tag, the share left with none
(learned decisions); `yardsticks` (worded tags, text scores, chosen knowing truth):
`best_global_threshold`, `per_tag_hindsight`, `prototype5_hindsight` (a prototype of 5
random true photos plus the text vector, each tag at its best threshold); and the gaps the
issue asks for. `--method` picks the learner (`LookSettings.method`).

Scenario families (CLIP-like geometry: image and text vectors in two cones with a gap
between them, each concept an image centroid, photos carrying 0..several tags with
varied salience, tags co-occurring in scenes, Gaussian nuisance directions):
- clean: prompts that match their look fairly well, a few look-alike pairs;
- lookalikes: most tags in look-alike pairs whose prompts both point at what the pair
  shares;
- badprompts: most prompts match their look badly (or partly another concept's).
What they cannot show: real photos, the real model's geometry (its cones, its concept
structure, how prompts fail), or real users (who answer what they like, not a queue).

Example: python benchmarks/learning_sim.py --make /tmp/s --family clean --seed 0
         python benchmarks/learning_sim.py --scenario /tmp/s --answers 10 --examples 5 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from threshold_sim import _best_cut, metrics

from albumtagger.config import ThresholdSettings
from albumtagger.tagging.look import (
    LookSettings,
    example_floor,
    learned_column,
    learned_look,
    robust_center_scale,
)
from albumtagger.tagging.thresholds import (
    USER_ACCEPTED,
    USER_NONE,
    USER_REJECTED,
    Feedback,
    decide,
    fit_thresholds,
    review_queue,
)

FAMILIES = ("clean", "lookalikes", "badprompts")
FULL = {"n": 6000, "k": 80, "d": 1536, "wordless": 10}
QUICK = {"n": 800, "k": 20, "d": 256, "wordless": 4}


# ------------------------------------------------------------------------- scenarios


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=-1, keepdims=True).clip(min=1e-12)


def make_scenario(
    family: str, seed: int, *, n: int, k: int, d: int, wordless: int
) -> dict[str, np.ndarray]:
    """A scenario of `family` (see the module docstring) as arrays."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    r = np.random.default_rng([seed, FAMILIES.index(family)])
    img_axis = _unit_rows(r.standard_normal(d))
    txt_axis = _unit_rows(0.35 * img_axis + _unit_rows(r.standard_normal(d)))  # the gap
    centroids = _unit_rows(r.standard_normal((k, d)))
    pair_share = {"clean": 0.15, "lookalikes": 0.7, "badprompts": 0.15}[family]
    n_pairs = round(k * pair_share / 2)
    pairs = [(2 * i, 2 * i + 1) for i in range(n_pairs)]
    for a, b in pairs:  # look-alikes: b's look is mostly a's
        rho = r.uniform(0.7, 0.85)
        centroids[b] = _unit_rows(rho * centroids[a] + np.sqrt(1 - rho**2) * centroids[b])

    # Truth: a photo is in one of a few scenes; each tag has a prevalence, raised in
    # its own scene (co-occurring tags).
    n_scenes = max(4, k // 8)
    scene_of_tag = r.integers(0, n_scenes, k)
    prevalence = np.exp(r.uniform(np.log(0.01), np.log(0.06), k))
    photo_scene = r.integers(0, n_scenes, n)
    boost = np.where(scene_of_tag[None, :] == photo_scene[:, None], 3.0, 0.6)
    truth = r.random((n, k)) < (prevalence[None, :] * boost)

    # Images: the image cone, the concepts shown (salience varies), nuisance structure.
    nuisance = _unit_rows(r.standard_normal((24, d)))
    salience = r.uniform(0.35, 1.0, (n, k)) * truth
    images = (
        1.0 * img_axis[None, :]
        + 0.55 * salience @ centroids
        + 0.35 * r.standard_normal((n, 24)) @ nuisance / np.sqrt(6)
        + 0.55 * r.standard_normal((n, d)) / np.sqrt(d) * np.sqrt(d / 256)
    )
    images = _unit_rows(images).astype(np.float32)

    # Texts: the text cone plus how well the prompt says the look.
    if family == "badprompts":
        quality = np.where(r.random(k) < 0.6, r.uniform(0.1, 0.35, k), r.uniform(0.4, 0.7, k))
    else:
        quality = r.uniform(0.45, 0.8, k)
    wrong = np.roll(centroids, 3, axis=0)  # a different concept, partly named instead
    wrong_share = np.where((family == "badprompts") & (r.random(k) < 0.4), 0.35, 0.0)
    look = centroids.copy()
    if family == "lookalikes":
        for a, b in pairs:  # both prompts name what the pair shares
            look[a] = look[b] = _unit_rows(centroids[a] + centroids[b])
    words = quality[:, None] * (look + wrong_share[:, None] * wrong) + np.sqrt(
        1 - quality[:, None] ** 2
    ) * _unit_rows(r.standard_normal((k, d)))
    texts = 1.2 * txt_axis[None, :] + 0.8 * _unit_rows(words)
    is_wordless = np.zeros(k, dtype=bool)
    is_wordless[r.choice(np.arange(2 * n_pairs, k), size=wordless, replace=False)] = True
    texts[is_wordless] = 1.2 * txt_axis + 0.8 * _unit_rows(r.standard_normal((wordless, d)))
    return {
        "images": images,
        "texts": _unit_rows(texts).astype(np.float32),
        "truth": truth,
        "wordless": is_wordless,
    }


def write_scenario(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        np.save(directory / f"{name}.npy", value)


def read_scenario(directory: Path) -> dict[str, np.ndarray]:
    return {
        name: np.load(directory / f"{name}.npy")
        for name in ("images", "texts", "truth", "wordless")
    }


# ------------------------------------------------------------------------ simulation


class TagTeacher:
    """One tag taught by a simulated user: its column, threshold and answers."""

    def __init__(
        self,
        X: np.ndarray,
        mean: np.ndarray,
        text: np.ndarray | None,
        truth: np.ndarray,
        settings: ThresholdSettings,
        look: LookSettings | None,
        reference: tuple[float, float] | None,
    ) -> None:
        self.X, self.mean, self.text, self.truth = X, mean, text, truth
        self.settings, self.look, self.reference = settings, look, reference
        self.text_scores = None if text is None else X @ text
        self.rows: list[int] = []
        self.positive: list[bool] = []
        self.suggested: list[bool] = []
        self.review: list[bool] = []
        self.user = np.zeros((len(X), 1), dtype=np.int8)
        self.floor: float | None = None
        self.column = self._column()
        self.threshold = self._fit()

    def _column(self) -> np.ndarray:
        if self.look is None:  # thresholds only: the text scores stay
            assert self.text_scores is not None
            return self.text_scores
        if self.text is None:  # wordless: as the decision state learns it
            assert self.reference is not None
            column, look = learned_look(
                self.X,
                None,
                self.rows,
                self.positive,
                mean=self.mean,
                reference=self.reference,
                settings=self.look,
            )
            assert look is not None
            self.floor = example_floor(
                self.X,
                self.rows,
                self.positive,
                look,
                mean=self.mean,
                center=self.reference[0],
                settings=self.look,
            )
            return column
        return learned_column(
            self.X,
            self.text,
            self.rows,
            self.positive,
            mean=self.mean,
            reference=self.reference,
            text_scores=self.text_scores,
            settings=self.look,
        )

    def _fit(self) -> float:
        fb = Feedback(
            np.array(self.rows, dtype=np.int64),
            np.zeros(len(self.rows), dtype=np.int64),
            np.array(self.positive, dtype=bool),
            np.array(self.suggested, dtype=bool),
            np.array(self.review, dtype=bool),
        )
        floors = None if self.floor is None else {0: self.floor}
        return float(fit_thresholds(self.column[:, None], fb, self.settings, floors=floors)[0])

    def answer(self, row: int, *, review: bool) -> None:
        yes = bool(self.truth[row])
        self.rows.append(int(row))
        self.positive.append(yes)
        self.suggested.append(review and bool(self.column[row] >= self.threshold))
        self.review.append(review)
        self.user[row, 0] = USER_ACCEPTED if yes else USER_REJECTED
        self.column = self._column()
        self.threshold = self._fit()

    def ask(self) -> int | None:
        """The review queue's next question for this tag (the project's own queue)."""
        queue = review_queue(
            self.column[:, None], np.array([self.threshold]), self.user, 1, self.settings
        )
        return queue[0][0] if queue else None

    def teach(self, answers: int) -> None:
        for _ in range(answers):
            row = self.ask()
            if row is None:
                break
            self.answer(row, review=True)


def _decided(
    columns: list[np.ndarray],
    thresholds: list[float],
    users: list[np.ndarray],
    settings,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(tags that pass their thresholds or that the user gave, tags `decide` gives: the
    cap and the fallback included, the tags `first` ranked first), bool [photos x tags]."""
    scores = np.stack(columns, axis=1).astype(np.float32)
    user = np.concatenate(users, axis=1)
    passed = ((scores >= np.array(thresholds, dtype=np.float32)) & (user == USER_NONE)) | (
        user == USER_ACCEPTED
    )
    return passed, decide(scores, np.array(thresholds), user, settings, first=first).included()


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    return metrics(pred, truth)["micro_f1"] if truth.size else 0.0


def _hindsight(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(micro-F1 at the best single threshold, at each tag's own best threshold)."""
    cut = _best_cut(scores.ravel(), truth.ravel())
    per_tag = np.array([_best_cut(scores[:, j], truth[:, j]) for j in range(scores.shape[1])])
    return _f1(scores >= cut, truth), _f1(scores >= per_tag[None, :], truth)


def _zero_rate(included: np.ndarray, has_true: np.ndarray) -> float:
    """Of the photos with a true tag, the share that get no tag at all."""
    zero = has_true & ~included.any(axis=1)
    return round(float(zero.sum() / max(has_true.sum(), 1)), 4)


def simulate(
    arrays: dict[str, np.ndarray],
    answers: int,
    examples: int,
    *,
    settings: ThresholdSettings | None = None,
    look: LookSettings | None = None,
    seed: int = 0,
) -> dict[str, object]:
    settings = settings or ThresholdSettings()
    look = look or LookSettings()
    X = np.asarray(arrays["images"], dtype=np.float32)
    T = np.asarray(arrays["texts"], dtype=np.float32)
    truth = np.asarray(arrays["truth"], dtype=bool)
    wordless = np.asarray(arrays["wordless"], dtype=bool)
    worded = np.flatnonzero(~wordless)
    mean = X.mean(axis=0, dtype=np.float64)
    r = np.random.default_rng(seed)
    text_scores = X @ T.T
    refs = [robust_center_scale(text_scores[:, j]) for j in worded]
    reference = (float(np.median([m for m, _ in refs])), float(np.median([s for _, s in refs])))

    prior = [TagTeacher(X, mean, T[j], truth[:, j], settings, None, None) for j in worded]
    only = [TagTeacher(X, mean, T[j], truth[:, j], settings, None, None) for j in worded]
    learned = [TagTeacher(X, mean, T[j], truth[:, j], settings, look, None) for j in worded]
    for teacher in only + learned:
        teacher.teach(answers)
    wordless_teachers = []
    proto_cols = []
    for j in range(T.shape[0]):
        true_rows = np.flatnonzero(truth[:, j])
        picks = r.choice(true_rows, size=min(examples, true_rows.size), replace=False)
        if wordless[j]:
            teacher = TagTeacher(X, mean, None, truth[:, j], settings, look, reference)
            for row in sorted(picks.tolist()):
                teacher.answer(row, review=False)  # examples: photos the user added
            teacher.teach(answers)
            wordless_teachers.append(teacher)
        else:
            five = r.choice(true_rows, size=min(5, true_rows.size), replace=False)
            proto_cols.append(
                learned_column(
                    X,
                    T[j],
                    five,
                    np.ones(five.size, dtype=bool),
                    mean=mean,
                    settings=LookSettings(method="prototype"),
                )
            )

    tw = truth[:, worded]
    order = np.concatenate([worded, np.flatnonzero(wordless)])

    def run(teachers: list[TagTeacher]) -> tuple[np.ndarray, np.ndarray]:
        everyone = teachers + wordless_teachers
        return _decided(
            [t.column for t in everyone],
            [t.threshold for t in everyone],
            [t.user for t in everyone],
            settings,
            np.array([t.text is None for t in everyone]),
        )

    prior_pass, prior_dec = run(prior)
    only_pass, only_dec = run(only)
    learned_pass, learned_dec = run(learned)
    nw = worded.size
    tl = truth[:, order[nw:]]
    has_true = truth.any(axis=1)
    global_f1, per_tag_f1 = _hindsight(text_scores[:, worded], tw)
    _, proto_f1 = _hindsight(np.stack(proto_cols, axis=1), tw)
    result: dict[str, object] = {
        "worded": {
            "prior": _f1(prior_pass[:, :nw], tw),
            "thresholds_only": _f1(only_pass[:, :nw], tw),
            "learned": _f1(learned_pass[:, :nw], tw),
        },
        "wordless": {"learned": _f1(learned_pass[:, nw:], tl)},
        "zero_tag_rate": _zero_rate(learned_pass, has_true),
        "yardsticks": {
            "best_global_threshold": global_f1,
            "per_tag_hindsight": per_tag_f1,
            "prototype5_hindsight": proto_f1,
        },
    }
    best = max(global_f1, per_tag_f1)
    learned_f1 = _f1(learned_pass[:, :nw], tw)
    result["gaps"] = {
        "learned_minus_best_hindsight_threshold": round(learned_f1 - best, 4),
        "learned_over_prototype5": round(learned_f1 / max(proto_f1, 1e-9), 4),
    }
    result["decide"] = {
        "worded": {
            "prior": _f1(prior_dec[:, :nw], tw),
            "thresholds_only": _f1(only_dec[:, :nw], tw),
            "learned": _f1(learned_dec[:, :nw], tw),
        },
        "wordless": {"learned": _f1(learned_dec[:, nw:], tl)},
        "zero_tag_rate": _zero_rate(learned_dec, has_true),
    }
    result["detail"] = {
        "worded_learned": metrics(learned_pass[:, :nw], tw),
        "worded_thresholds_only": metrics(only_pass[:, :nw], tw),
        "wordless_learned": metrics(learned_pass[:, nw:], tl),
        "decide_worded_learned": metrics(learned_dec[:, :nw], tw),
        "decide_worded_thresholds_only": metrics(only_dec[:, :nw], tw),
        "tags_per_photo": {
            "truth": round(float(truth.sum(axis=1).mean()), 3),
            "learned_passed": round(float(learned_pass.sum(axis=1).mean()), 3),
            "learned_decided": round(float(learned_dec.sum(axis=1).mean()), 3),
        },
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make", type=Path, help="write a scenario into this folder")
    parser.add_argument("--family", choices=FAMILIES, default="clean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small scenario (tests)")
    parser.add_argument("--scenario", type=Path, help="run the scenario in this folder")
    parser.add_argument("--answers", type=int, default=10, help="answers per tag")
    parser.add_argument("--examples", type=int, default=5, help="examples per wordless tag")
    parser.add_argument("--method", choices=("logistic", "prototype"), default="prototype")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args(argv)
    if bool(args.make) == bool(args.scenario):
        parser.error("give one of --make DIR or --scenario DIR")
    if args.make:
        size = QUICK if args.quick else FULL
        write_scenario(args.make, make_scenario(args.family, args.seed, **size))
        print(json.dumps({"written": str(args.make), "family": args.family, **size}))
        return 0
    start = time.perf_counter()
    result = simulate(
        read_scenario(args.scenario),
        args.answers,
        args.examples,
        look=LookSettings(method=args.method),
        seed=args.seed,
    )
    result["answers"], result["examples"], result["method"] = (
        args.answers,
        args.examples,
        args.method,
    )
    result["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
