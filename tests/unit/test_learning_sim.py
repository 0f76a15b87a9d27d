"""The learning benchmark (`benchmarks/learning_sim.py`) on a quick scenario: it writes
scenarios, prints the figures the issue names, and learning the look clearly beats
moving thresholds alone where the prompts miss the look."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "learning_sim", ROOT / "benchmarks" / "learning_sim.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_scenario_is_written_as_the_issue_specifies(sim, tmp_path: Path, capsys) -> None:
    assert (
        sim.main(["--make", str(tmp_path), "--family", "lookalikes", "--seed", "1", "--quick"]) == 0
    )
    images, texts = np.load(tmp_path / "images.npy"), np.load(tmp_path / "texts.npy")
    truth, wordless = np.load(tmp_path / "truth.npy"), np.load(tmp_path / "wordless.npy")
    assert images.dtype == texts.dtype == np.float32
    assert images.shape == (800, 256) and texts.shape == (20, 256)
    assert truth.shape == (800, 20) and truth.dtype == bool
    assert wordless.shape == (20,) and 0 < wordless.sum() < 20
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert truth[:, wordless].any(axis=0).all()  # every wordless tag has true photos


def test_learning_beats_thresholds_where_the_prompts_miss(sim, tmp_path: Path, capsys) -> None:
    sim.main(["--make", str(tmp_path), "--family", "badprompts", "--seed", "0", "--quick"])
    capsys.readouterr()
    args = ["--scenario", str(tmp_path), "--answers", "10", "--examples", "5", "--json"]
    assert sim.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["worded"]) == {"prior", "thresholds_only", "learned"}
    assert set(out["wordless"]) == {"learned"}
    assert 0.0 <= out["zero_tag_rate"] <= 1.0
    assert set(out["yardsticks"]) == {
        "best_global_threshold",
        "per_tag_hindsight",
        "prototype5_hindsight",
    }
    assert out["worded"]["learned"] >= out["worded"]["thresholds_only"] + 0.1
    assert out["wordless"]["learned"] >= 0.6
