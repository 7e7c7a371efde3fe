"""Run by tests/test_distributed.py under torchrun: a few DDP steps with gloo on CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import flat_params, make_trainer  # noqa: E402


def main(out: Path, steps: int) -> None:
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    tr = make_trainer(out / "run", steps=steps, batch=8, dropout=0.0)
    losses = [tr.train_step() for _ in range(steps)]
    torch.save(flat_params(tr.model), out / f"params_rank{rank}.pt")
    (out / f"losses_rank{rank}.json").write_text(json.dumps(losses))
    if distributed:
        tr.save_checkpoint()  # collective: exercises the gathered RNG states
        dist.barrier()  # both ranks past the checkpoint before gloo's teardown (an early
        dist.destroy_process_group()  # teardown aborted a rank under load once)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
