"""A tag's learned look: a scoring direction on the stored image vectors.

Pure NumPy. A tag is scored `X @ t` by its text vector t; once the user has answered
about some of its photos (accepted or added: examples; rejected or removed:
counter-examples), `learned_direction` returns a unit direction w learned from those
photos, anchored to t while the answers are few, and `X @ w` replaces `X @ t` for it.
The column is put on the scale of the tag's text scores (`Look`), so the
priors, thresholds, ranking and fallback keep working on numbers of the usual size.

Two learners (`LookSettings.method`); the prototype is the default: in
`benchmarks/learning_sim.py` (10 answers a tag) it learns wordless tags and tags with
bad prompts better and refits 200 answers at D = 1536 in about a millisecond; the
logistic model does better where prompts are good and under the full policy's fallback,
and costs O(n^2 D) for n answers:
- "logistic": a logistic model logit = b + x . w, w with a Gaussian prior
  around `anchor_slope` / (robust std of the text scores) * t, fitted MAP by Newton steps
  in the span of the answered photos (the representer theorem: the rest of w stays at
  its prior), plus a weighted pseudo counter-example at the library's mean vector (most
  photos do not show a tag);
- "prototype" (the default): w = a * t + (1 - a) * (unit(mean(examples) - mu) -
  beta * unit(mean(counter-examples) - mu)), mu the library mean, a shrinking as
  examples grow.

Both are deterministic functions of (vectors, ordered answers, settings): a photo's
latest answer counts, no random start. A tag without answers keeps exactly its text
vector; a tag without text ("wordless") is learned from its answers alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SCALE = 1e-6
METHODS = ("logistic", "prototype")


@dataclass(frozen=True)
class LookSettings:
    """The numbers of the learners (not user settings)."""

    method: str = "prototype"
    anchor_slope: float = 3.0
    """logistic: prior logit slope per robust std of the text scores along t."""
    ridge: float = 0.001
    """logistic: prior precision of the learned part of w (per unit of squared norm,
    in logit units per unit of cosine)."""
    background_weight: float = 3.0
    """logistic: weight of the pseudo counter-example at the library mean."""
    bias_sd: float = 4.0
    """logistic: prior sd of the logit offset."""
    prototype_text_weight: float = 3.0
    """prototype: t weighs this / (this + examples) of the blend."""
    prototype_counter_weight: float = 0.5
    """prototype: beta, the weight of the counter-examples' mean."""


def latest_answers(
    photos: Sequence[int] | np.ndarray, positive: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(photo rows, positive) with only each photo's latest answer, in the order of those
    latest answers (answers oldest first)."""
    ph = np.asarray(photos, dtype=np.int64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    if ph.size == 0:
        return ph, pos
    _, last = np.unique(ph[::-1], return_index=True)
    keep = np.sort(ph.size - 1 - last)
    return ph[keep], pos[keep]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else np.zeros_like(v)


def robust_center_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and robust std (1.4826 * MAD) of `values`."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0, MIN_SCALE
    med = float(np.median(v))
    return med, max(1.4826 * float(np.median(np.abs(v - med))), MIN_SCALE)


def learned_direction(
    text: np.ndarray | None,
    answered: np.ndarray,
    positive: np.ndarray,
    *,
    mean: np.ndarray,
    text_scale: float = 0.03,
    settings: LookSettings | None = None,
) -> np.ndarray:
    """A tag's unit scoring direction (float32, D).

    `text`: the tag's unit text vector, or None for a wordless tag. `answered`: the
    vectors of the photos answered about ([n x D], each photo once, its latest answer);
    `positive`: whether each is an example. `mean`: the library's mean image vector.
    `text_scale`: robust std of the tag's text scores over the library (logistic only).
    No answers: `text` itself; a wordless tag without examples: the zero vector.
    """
    s = settings or LookSettings()
    if s.method not in METHODS:
        raise ValueError(f"unknown look method {s.method!r}")
    X = np.asarray(answered, dtype=np.float64).reshape(-1, np.asarray(mean).size)
    y = np.asarray(positive, dtype=bool).ravel()
    mu = np.asarray(mean, dtype=np.float64).ravel()
    t = None if text is None else np.asarray(text, dtype=np.float64).ravel()
    if X.shape[0] == 0:
        if t is None:
            return np.zeros(mu.size, dtype=np.float32)
        return np.asarray(text, dtype=np.float32).ravel().copy()
    if t is None and not y.any():
        return np.zeros(mu.size, dtype=np.float32)
    if s.method == "prototype":
        w = _prototype(t, X, y, mu, s)
    else:
        w = _logistic(t, X, y, mu, text_scale, s)
    w = _unit(w)
    if not np.any(w):
        return np.zeros(mu.size, dtype=np.float32) if t is None else t.astype(np.float32)
    return w.astype(np.float32)


def _prototype(
    t: np.ndarray | None, X: np.ndarray, y: np.ndarray, mu: np.ndarray, s: LookSettings
) -> np.ndarray:
    n_pos = int(np.count_nonzero(y))
    w = np.zeros(mu.size)
    if n_pos:
        w += _unit(X[y].mean(axis=0) - mu)
    if (~y).any():
        w -= s.prototype_counter_weight * _unit(X[~y].mean(axis=0) - mu)
    if t is not None:
        a = s.prototype_text_weight / (s.prototype_text_weight + n_pos)
        w = a * t + (1.0 - a) * w
    return w


def _logistic(
    t: np.ndarray | None,
    X: np.ndarray,
    y: np.ndarray,
    mu: np.ndarray,
    text_scale: float,
    s: LookSettings,
) -> np.ndarray:
    """MAP w = w0 + B.T c (B: the answered photos and the mean, centred on the mean; the
    representer theorem), logit = b + x . w, penalty ridge / 2 * |B.T c|^2; Newton steps
    with backtracking on the convex objective. Costs O(n^2 D) for n answers."""
    w0 = np.zeros(mu.size) if t is None else (s.anchor_slope / max(text_scale, 1e-4)) * t
    A = np.vstack([X, mu[None, :]])
    labels = np.append(y.astype(np.float64), 0.0)
    weights = np.append(np.ones(y.size), s.background_weight)
    # Directions of the learned part: the answered photos relative to the library mean
    # (the cone all photos share carries no look), and the mean itself.
    B = np.vstack([X - mu, mu[None, :]])
    K = B @ B.T
    k = K.shape[0]
    K += np.eye(k) * (1e-8 * max(float(np.trace(K)) / k, 1e-12))
    G = np.hstack([A @ B.T, np.ones((A.shape[0], 1))])
    base = A @ w0
    P = np.zeros((k + 1, k + 1))
    P[:k, :k] = s.ridge * K
    P[k, k] = 1.0 / s.bias_sd**2
    v = np.zeros(k + 1)

    def objective(p: np.ndarray) -> float:
        logit = base + G @ p
        return float(
            np.sum(weights * (np.logaddexp(0.0, logit) - labels * logit)) + 0.5 * p @ P @ p
        )

    current = objective(v)
    for _ in range(50):
        logit = base + G @ v
        p = 0.5 * (1.0 + np.tanh(0.5 * logit))
        grad = G.T @ (weights * (p - labels)) + P @ v
        hess = (G * (weights * p * (1.0 - p))[:, None]).T @ G + P
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while True:
            cand = v - size * step
            value = objective(cand)
            if value <= current or size < 1e-8:
                break
            size *= 0.5
        if value > current:
            break
        gain = current - value
        v, current = cand, value
        if gain < 1e-10 or float(np.abs(size * step).max()) < 1e-10:
            break
    return w0 + B.T @ v[:k]


@dataclass(frozen=True)
class Look:
    """A tag's learned look as a recipe: a photo's score is its vector along `direction`,
    moved onto the text scores' scale (`factor`, `shift`), so photos that arrive later
    are scored as the library was without reading it again."""

    direction: np.ndarray
    """float32 [D], unit."""
    factor: float
    shift: float

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return self.on_scale(np.asarray(vectors, dtype=np.float32) @ self.direction)

    def on_scale(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores along `direction`, on the text scores' scale (float32)."""
        return (np.asarray(raw, dtype=np.float64) * self.factor + self.shift).astype(np.float32)

    def raw_to_score(self, raw: float) -> float:
        return raw * self.factor + self.shift


def learned_column(
    vectors: np.ndarray,
    text: np.ndarray | None,
    rows: Sequence[int] | np.ndarray,
    positive: Sequence[bool] | np.ndarray,
    *,
    mean: np.ndarray | None = None,
    reference: tuple[float, float] | None = None,
    text_scores: np.ndarray | None = None,
    settings: LookSettings | None = None,
) -> np.ndarray:
    """One tag's library scores (float32 [N]) under its learned look.

    `vectors`: the library's image vectors [N x D]; `rows`, `positive`: its answers,
    oldest first (a photo's latest counts). No answers and a text vector: exactly
    `vectors @ text`. Otherwise the learned scores, moved onto the scale of the text
    scores (or of `reference`, the (median, robust std) to use for a wordless tag).
    `text_scores`: `vectors @ text` when the caller has it (a pass over the vectors less).
    """
    return learned_look(
        vectors,
        text,
        rows,
        positive,
        mean=mean,
        reference=reference,
        text_scores=text_scores,
        settings=settings,
    )[0]


def learned_look(
    vectors: np.ndarray,
    text: np.ndarray | None,
    rows: Sequence[int] | np.ndarray,
    positive: Sequence[bool] | np.ndarray,
    *,
    mean: np.ndarray | None = None,
    reference: tuple[float, float] | None = None,
    text_scores: np.ndarray | None = None,
    settings: LookSettings | None = None,
) -> tuple[np.ndarray, Look | None]:
    """`learned_column`'s scores and their recipe (None: the scores are the text
    scores, or raw ones with neither text nor `reference` to scale them by)."""
    X = np.asarray(vectors, dtype=np.float32)
    s = settings or LookSettings()
    rows_, pos_ = latest_answers(rows, positive)
    t = None if text is None else np.asarray(text, dtype=np.float32).ravel()
    if t is not None and text_scores is None:
        text_scores = X @ t
    if rows_.size == 0 and text_scores is not None:
        return text_scores, None
    mu = X.mean(axis=0, dtype=np.float64) if mean is None else np.asarray(mean, np.float64)
    ref = reference if text_scores is None else robust_center_scale(text_scores)
    w = learned_direction(
        t, X[rows_], pos_, mean=mu, text_scale=ref[1] if ref else 0.03, settings=s
    )
    raw = X @ w
    if ref is None:
        return raw, None
    med, scale = robust_center_scale(raw)
    factor = ref[1] / max(scale, MIN_SCALE)
    look = Look(w, factor, ref[0] - med * factor)
    return look.on_scale(raw), look


def example_floor(
    vectors: np.ndarray,
    rows: Sequence[int] | np.ndarray,
    positive: Sequence[bool] | np.ndarray,
    look: Look,
    *,
    mean: np.ndarray,
    center: float,
    settings: LookSettings | None = None,
) -> float | None:
    """The lowest threshold a wordless tag (scored by `look`, its library median
    `center`) may start from: halfway from the library's median to its typical example,
    each example scored by the look learned from the other answers (left out in turn:
    scored by the look it helped make, an example would look more typical than a new
    photo of the same thing). So a photo that looks more like the average photo than like
    the examples is not suggested, however many photos carry the tag (the usual prior,
    made for text scores, may sit lower then). None with fewer than two examples, or
    when they look like any photo. The left-out looks are prototypes whatever the method
    (a logistic fit per example would cost as many fits)."""
    s = settings or LookSettings()
    X = np.asarray(vectors)
    rows_, pos_ = latest_answers(rows, positive)
    examples = X[rows_[pos_]].astype(np.float64)
    n = examples.shape[0]
    if n < 2:
        return None
    mu = np.asarray(mean, dtype=np.float64)
    counter = X[rows_[~pos_]].astype(np.float64)
    away = _unit(counter.mean(axis=0) - mu) if counter.size else np.zeros(mu.size)
    total = examples.sum(axis=0)
    left_out = [
        float(x @ _unit(_unit((total - x) / (n - 1) - mu) - s.prototype_counter_weight * away))
        for x in examples
    ]
    typical = look.raw_to_score(float(np.median(left_out)))
    return 0.5 * (center + typical) if typical > center else None
