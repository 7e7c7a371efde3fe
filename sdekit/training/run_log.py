"""What a training run leaves beside its checkpoints: metric rows (JSONL and CSV) and
PNG grids of samples from the EMA model."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import torch

from ..errors import InputError
from ..files import nothing_to_check, open_for_write, refuse_symlink, write_text_safely
from ..sampling import SamplingSpec, resolve, run_plan
from .images import save_image_grid

log = logging.getLogger(__name__)

__all__ = ["MetricsLog", "draw_samples", "write_sample_grid"]


class MetricsLog:
    """Rows of metrics in ``run_dir/metrics.jsonl`` and the same rows in ``metrics.csv``
    (never written through a symlink); ``before_write()``, if given, runs before each
    append or trim (e.g. a run lock's check)."""

    def __init__(self, run_dir, before_write=None):
        self.run_dir, self.before_write = Path(run_dir), before_write or nothing_to_check
        self.jsonl, self.csv = self.run_dir / "metrics.jsonl", self.run_dir / "metrics.csv"

    def append(self, row: dict) -> None:
        """Add one row (a dict with at least ``step`` and a finite ``loss``; no value may be
        NaN or infinite, so the file stays valid JSON) to both files."""
        self.before_write()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open_for_write(self.jsonl, "a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")  # valid JSON: no NaN
        self._append_csv(row)
        log.info("step %d loss %.5f", row["step"], row["loss"])

    def trim(self, step: int) -> None:
        """Drop rows past ``step`` (a fresh start clears the files; a resume forgets what
        the interrupted run logged after its last checkpoint). Neither file is written
        through a symlink (:func:`sdekit.files.refuse_symlink`)."""
        self.before_write()
        refuse_symlink(self.jsonl)
        refuse_symlink(self.csv)
        if not self.jsonl.exists():
            return
        rows = [r for r in self._read_rows() if r.get("step", 0) <= step]
        write_text_safely(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows))
        if self.csv.exists():
            self.csv.unlink()
        for r in rows:
            self._append_csv(r)

    def _read_rows(self) -> list[dict]:
        """The JSONL rows; a torn last line (a crash mid-write) is dropped with a warning,
        any other unreadable line is an error naming the file and line."""
        lines = [(i, r) for i, r in enumerate(self.jsonl.read_text().splitlines(), 1) if r.strip()]
        rows = []
        for k, (i, text) in enumerate(lines):
            try:
                rows.append(json.loads(text))
            except ValueError:
                if k == len(lines) - 1:
                    log.warning("%s: dropping the torn last line %d (%r)", self.jsonl, i, text)
                    continue
                raise InputError(f"{self.jsonl}, line {i}, is not a JSON row: {text[:80]!r}; "
                                 "repair or remove that line to resume") from None  # fmt: skip
        return rows

    def _append_csv(self, row: dict) -> None:
        new = not self.csv.exists()
        with open_for_write(self.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


@torch.no_grad()
def draw_samples(model, plan, device, progress: bool = False):
    """``(x, info)``: ``plan.spec.n`` float32 samples of ``model`` along a resolved
    :class:`~sdekit.sampling.SamplingPlan`, from a generator seeded with ``plan.spec.seed``
    (the same samples for the same plan)."""
    spec = plan.spec
    if isinstance(spec.seed, tuple):
        raise InputError(f"draw one seed at a time (spec.per_seed()), got seeds {spec.seed}")
    g = torch.Generator(device).manual_seed(spec.seed)
    return run_plan(
        plan, model, generator=g, device=device, dtype=torch.float32, progress=progress
    )


def write_sample_grid(sde, model, path, spec: SamplingSpec, device, before_write=None) -> Path:
    """Sample ``spec`` (:func:`draw_samples`) and write the images as a PNG grid;
    ``before_write()``, if given, runs between the two (e.g. a run lock's check)."""
    x, _ = draw_samples(model, resolve(spec, sde), device)
    (before_write or nothing_to_check)()
    return save_image_grid(x, path)
