"""The paper's Table 1 at CPU scale: models with different noise on Fashion-MNIST, side by side.

    python recipes/table1_fashion_mnist.py runs/study/iso-s0 runs/study/gff-s0 \\
        runs/study/gff-aligned-s0 --out docs/results

Reads what ``python recipes/fashion_mnist_nivp.py evaluate`` wrote into each run
(``evaluation.json``; ``subset.json`` for cells on fewer samples where present) and labels
each run from its ``config.json``: the noise (``isotropic``, ``gff``, ``data``), ``-aligned``
for the aligned schedule, ``-<target>`` for a target other than the whitened ε, and the
training seed. Writes into ``--out``:

- ``table1.csv``: one row per (model, table, sampler, steps): noise label, seed, NFE,
  samples, FID, its bootstrap sd, precision, recall, log-spectrum RMSE, sampling seconds;
- ``table1.md``: FID per (sampler, steps) for every model beside the paper's Table 1; the
  best deterministic sampler at ≤ 20 NFE against ancestral at 100 steps on the same model
  (the ratio ± its sd; also for every ``--extra`` evaluation, e.g. two sampling seeds
  pooled with ``evaluate --eval-seed 0,1``); each noise against isotropic at 100
  ancestral steps with sample and training-seed spread; precision / recall, bits/dim and
  training wall times;
- ``fid_vs_steps.png``: FID against steps, a panel per sampler, ± 2 bootstrap sd, and the
  paper's curves;
- ``samples_<label>.png``: the first 64 samples of each model (DDPM ancestral, 100 steps),
  from the sample files its summary row lists (``cells``); a run whose summary lists none
  is named on stderr.

``--from-csv docs/results/table1.csv`` redraws only ``fid_vs_steps.png`` (into ``--out``)
from a written CSV, with no run folders.

Nothing is sampled here; it only reads the runs (``sdekit.experiments.table1`` does the
work). Needs the ``recipes`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdekit.errors import InputError
from sdekit.experiments.table1 import SAMPLERS, parse_extra, plot_from_csv, write_table1


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="*", help="evaluated run folders")
    p.add_argument("--from-csv", type=Path, help="redraw fid_vs_steps.png from this table1.csv")
    p.add_argument("--out", type=Path, default=Path("docs/results"), help="output folder")
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="samplers, in table order")
    p.add_argument("--grid-steps", type=int, default=100, help="ancestral steps of the grids")
    p.add_argument(
        "--summaries",
        default="evaluation",
        help="comma-separated evaluation names (--eval-name) whose cells are merged, "
        "the first one's rows winning",
    )
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="LABEL=NAMES",
        help="another evaluation of the runs, e.g. 'seeds 0+1=pooled' (summaries scored with "
        "--eval-seed 0,1): its ratio of best deterministic to ancestral is reported beside "
        "the main one (repeatable)",
    )
    args = p.parse_args(argv)
    if args.from_csv is not None or not args.runs:
        if args.from_csv is None or args.runs:
            p.error("give evaluated run folders, or --from-csv table1.csv alone")
        try:
            print(plot_from_csv(args.from_csv, args.out / "fid_vs_steps.png",
                                args.samplers.split(",")))  # fmt: skip
        except InputError as err:
            p.error(str(err))
        return args.out
    try:
        text = write_table1(
            args.runs,
            args.out,
            samplers=args.samplers.split(","),
            grid_steps=args.grid_steps,
            summaries=args.summaries.split(","),
            extra=parse_extra(args.extra),
        )
    except InputError as err:  # a run not evaluated, two runs with one label, a bad --extra
        p.error(str(err))
    print(text)
    return args.out


if __name__ == "__main__":
    main()
