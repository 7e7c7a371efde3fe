"""benchmarks/gpu.py --tiny: the GPU benchmark's code path runs on CPU at a tiny size and
reports every row (no timing assertions: timings belong in benchmarks/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_tiny_runs_every_row(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    gpu = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gpu  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(gpu)
    except BaseException:
        del sys.modules[spec.name]
        raise
    out = tmp_path / "gpu.json"
    gpu.main(["--tiny", "--warmup", "0", "--repeats", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    train = [r for r in result["train"] if "skipped" not in r]
    assert len(result["train"]) == 2 * len(gpu.TRAIN_CONFIGS)
    assert {(r["precision"], r["channels_last"], r["noise"]) for r in train} >= {
        ("fp32", False, "iso"), ("fp32", False, "gff"), ("bf16", True, "gff")
    }  # fmt: skip
    assert all(r["loss_finite"] and r["images_per_s"] > 0 for r in train)
    assert len(result["sample"]) == 2 * 2 * len(gpu.SAMPLERS)
    assert all(r["nfe"] == 20 and r["finite"] for r in result["sample"])
    assert "sample dpm_solver_2m + teleport bf16" in result["ni_overhead"]
    assert "train fp32" in result["ni_overhead"]
    md = tmp_path / "gpu.md"
    md.write_text(gpu.markdown(result))
    assert "| train fp32 gff |" in md.read_text()
