"""`benchmarks/gpu_check.py --dry-run`: the GPU check's code, on the CPU and small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(isolated_env: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    for precision in ("float32", "bfloat16"):
        check = result["golden"][precision]
        assert check["pass"] and check["precision"] == precision
        assert min(check["cosine_min"].values()) >= check["bound"]
    t = result["throughput"]
    assert t["photos"] == 4 and t["photos_per_s"] > 0
    assert 0 < t["efficiency"] < 1
    assert t["batch_size"] >= t["batch_size_max_run"] >= 1
    assert 0 <= t["gpu_idle_share"] < 1
    assert t["gpu_memory_peak_mb"] is None  # no GPU in a dry run
    assert result["goals"]["applied"] is False
    assert result["pass"] == {
        "golden": True,
        "efficiency": None,
        "photos_per_s": None,
        "all": True,
    }
