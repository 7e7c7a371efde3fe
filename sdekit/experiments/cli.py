"""The command line shared by the recipes: presets + overrides → train / sample / evaluate."""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

from ..covariance import NOISE_NAMES
from ..data import DatasetError
from .evaluation import evaluate_run
from .runs import sample_run, train

COMMANDS = ("all", "train", "sample", "evaluate")


def build_parser(description: str, presets: dict) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "command",
        nargs="?",
        default="all",
        choices=COMMANDS,
        help="all = train, then sample a PNG grid; train resumes from the run "
        "directory's latest checkpoint; sample / evaluate use the EMA weights",
    )
    p.add_argument(
        "--preset",
        default=next(iter(presets)),
        choices=list(presets),
        help="hyperparameter preset: "
        + "; ".join(f"{k}: {v['_about']}" for k, v in presets.items()),
    )
    p.add_argument(
        "--noise",
        default=None,
        choices=NOISE_NAMES,
        help="forward-noise covariance: isotropic N(0, I) or the Gaussian Free Field",
    )
    p.add_argument(
        "--noise-alpha",
        type=float,
        default=None,
        help="GFF exponent α (λ_k ∝ |k|^-2α); 1 is the paper's",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output folder (config.json, metrics.jsonl/csv, checkpoints/, samples/); "
        "default runs/<dataset>-<noise>-<preset>",
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (see the dataset's docs)")
    p.add_argument("--steps", type=int, default=None, help="total training steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=None, help="seed of data order, noise and init")
    p.add_argument("--ckpt-every", type=int, default=None, help="checkpoint period (steps)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--sampler",
        default="dpmpp_2m",
        help="sampler for 'sample' (see sdekit.available_samplers())",
    )
    p.add_argument("--sample-steps", type=int, default=50, help="steps (≈ NFE) for 'sample'")
    p.add_argument("--sample-n", type=int, default=64, help="number of images for 'sample'")
    p.add_argument(
        "--clip-x0",
        type=float,
        default=1.0,
        help="clamp the model's x0-prediction to [-c, c] while sampling (0: off)",
    )
    p.add_argument(
        "--eval-samplers",
        default="ancestral,ddim,dpmpp_2m",
        help="comma-separated samplers for 'evaluate'",
    )
    p.add_argument(
        "--eval-steps",
        default="1000,100,50,20,10",
        help="comma-separated step counts for 'evaluate'",
    )
    p.add_argument(
        "--eval-n", type=int, default=256, help="samples per (sampler, steps) in 'evaluate'"
    )
    p.add_argument(
        "--eval-seed", type=int, default=0, help="seed of the samples drawn by 'evaluate'"
    )
    p.add_argument(
        "--eval-name",
        default="evaluation",
        help="'evaluate' writes <run-dir>/<name>.json and .md (e.g. a second table on a subset)",
    )
    p.add_argument(
        "--eval-bpd-n",
        type=int,
        default=0,
        help="test images for bits/dim in 'evaluate' (0: skip; one ODE solve per batch)",
    )
    return p


def resolve_config(args, presets: dict, dataset: str) -> dict:
    cfg = copy.deepcopy(presets[args.preset])
    cfg.pop("_about", None)
    cfg["dataset"] = cfg.get("dataset", dataset)
    if args.noise:
        cfg["noise"] = args.noise
    if args.noise_alpha is not None:
        cfg.setdefault("noise_params", {})["alpha"] = args.noise_alpha
    if args.data_dir:
        cfg["data_dir"] = args.data_dir
    if args.device:
        cfg["device"] = args.device
    train = cfg["train"]
    for key, val in (
        ("steps", args.steps),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
        ("seed", args.seed),
        ("ckpt_every", args.ckpt_every),
    ):
        if val is not None:
            train[key] = val
    train["compile"] = train.get("compile", False) or args.compile
    train["channels_last"] = train.get("channels_last", False) or args.channels_last
    if args.no_progress:
        train["progress"] = False
    return cfg


def run_recipe(description: str, presets: dict, dataset: str, argv=None) -> int:
    """Parse ``argv`` and run the command; returns a process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = build_parser(description, presets).parse_args(argv)
    cfg = resolve_config(args, presets, dataset)
    run_dir = args.run_dir or Path("runs") / f"{cfg['dataset']}-{cfg['noise']}-{args.preset}"
    device = cfg.get("device") or "cpu"
    try:
        if args.command in ("all", "train"):
            train(cfg, run_dir, resume=not args.no_resume)
        if args.command in ("all", "sample"):
            png, info = sample_run(
                run_dir,
                n=args.sample_n,
                sampler=args.sampler,
                steps=args.sample_steps,
                device=device,
                progress=not args.no_progress,
                clip_x0=args.clip_x0 or None,
            )
            print(f"wrote {png} ({info.nfe} model evaluations per image)")
        if args.command == "evaluate":
            summary = evaluate_run(
                run_dir,
                samplers=args.eval_samplers.split(","),
                steps_list=[int(x) for x in args.eval_steps.split(",")],
                n=args.eval_n,
                device=device,
                clip_x0=args.clip_x0 or None,
                bpd_n=args.eval_bpd_n,
                seed=args.eval_seed,
                name=args.eval_name,
                progress=not args.no_progress,
            )
            print(json.dumps(summary, indent=2))
    except DatasetError as err:
        print(f"error: {err}")
        return 2
    except FileNotFoundError as err:
        print(f"error: {err} (train first, or pass --run-dir)")
        return 2
    return 0
