"""Scores and thresholds as the window writes them: three decimals, more where a score
and the threshold it is compared with would otherwise read the same ("score 0.053,
threshold 0.053: not suggested"), and never a negative zero."""

from __future__ import annotations

MAX_DIGITS = 6


def fixed(value: float, digits: int = 3) -> str:
    """`value` with `digits` decimals; "-0.000" is written "0.000"."""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]
    return text


def score_and_threshold(score: float, threshold: float) -> tuple[str, str]:
    """Both with as many decimals (3 to `MAX_DIGITS`) as it takes for different values
    to read differently."""
    digits = 3
    while digits < MAX_DIGITS and score != threshold:
        if fixed(score, digits) != fixed(threshold, digits):
            break
        digits += 1
    return fixed(score, digits), fixed(threshold, digits)
