"""How the window writes scores and thresholds."""

from albumtagger.app.numbers import fixed, score_and_threshold


def test_no_negative_zero() -> None:
    assert fixed(-0.0) == "0.000"
    assert fixed(-0.0004) == "0.000"
    assert fixed(-0.0006) == "-0.001"
    assert fixed(0.25) == "0.250"


def test_a_score_and_its_threshold_read_differently_when_they_differ() -> None:
    assert score_and_threshold(0.0531, 0.0534) == ("0.0531", "0.0534")
    assert score_and_threshold(0.05312, 0.05314) == ("0.05312", "0.05314")
    assert score_and_threshold(0.31, 0.25) == ("0.310", "0.250")
    assert score_and_threshold(0.25, 0.25) == ("0.250", "0.250")
    assert score_and_threshold(-0.00001, 0.0) == ("-0.00001", "0.00000")
