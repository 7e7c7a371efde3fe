"""The command line shared by the recipes: presets + overrides → train / sample / evaluate.

Every bad value ends in one ``error: …`` line and exit status 2, as argparse does for its
own errors: values are checked when parsed (positive counts, a known sampler, an existing
``--data-dir``, a device this machine has), and the errors of a run (a missing dataset, an
unreadable checkpoint) are reported the same way. ``--help`` shows the chosen preset's
values as the defaults (``--preset cpu --help`` shows the ``cpu`` preset's).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
from pathlib import Path

import torch

from ..covariance import NOISE_NAMES
from ..data import DatasetError
from ..files import CheckpointError
from ..sampling import resolve_sampler
from .config import DATA_NOISE, MODEL_TARGETS, SAMPLING_GRIDS, SCHEDULES
from .evaluation import evaluate_run
from .runs import sample_run, train

COMMANDS = ("all", "train", "sample", "evaluate")


# ------------------------------------------------------------------ value types
def _number(text: str, kind, lowest: float, what: str):
    """``kind(text)`` if it is finite and >= ``lowest``, else an argparse error saying
    ``what`` was expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (lowest <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text.strip()}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1."""
    return _number(text, int, 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    return _number(text, int, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite float > 0."""
    return _number(text, float, math.nextafter(0.0, 1.0), "a finite number > 0")


def non_negative_float(text: str) -> float:
    """A finite float >= 0."""
    return _number(text, float, 0.0, "a finite number >= 0")


def sampler_name(text: str) -> str:
    """A registered sampler (``resolve_sampler`` names the valid ones otherwise)."""
    try:
        resolve_sampler(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def sampler_list(text: str) -> list[str]:
    """Comma-separated sampler names."""
    return [sampler_name(s.strip()) for s in text.split(",") if s.strip()]


def step_list(text: str) -> list[int]:
    """Comma-separated step counts >= 1."""
    return [positive_int(s.strip()) for s in text.split(",") if s.strip()]


def seed_list(text: str) -> list[int]:
    """Comma-separated distinct seeds >= 0 (at least one)."""
    seeds = [non_negative_int(s.strip()) for s in text.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {text!r}")
    return seeds


def existing_dir(text: str) -> str:
    """A folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} does not exist or is not a folder")
    return text


def device_name(text: str) -> str:
    """A device this machine has (``cuda`` only where CUDA is available)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device; use cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has no usable CUDA device "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: sdekit's recipes run on cpu or cuda")
    return text


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------ the parser
class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: …)" except where the help already says what happens without one."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser(description: str, presets: dict, preset: str | None = None):
    """The recipe's parser, its defaults taken from ``presets[preset]`` (default: the first)."""
    preset = preset or next(iter(presets))
    cfg, train_cfg = presets[preset], presets[preset]["train"]
    p = argparse.ArgumentParser(description=description, formatter_class=_DefaultsHelp)
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
        default=preset,
        choices=list(presets),
        help="hyperparameter preset (the defaults below are its values): "
        + "; ".join(f"{k}: {v['_about']}" for k, v in presets.items()),
    )
    p.add_argument(
        "--noise",
        default=cfg["noise"],
        choices=(*NOISE_NAMES, DATA_NOISE),
        help="forward-noise covariance: isotropic N(0, I), the Gaussian Free Field, or "
        "'data': shaped like the training set's power spectrum",
    )
    p.add_argument(
        "--target",
        default=cfg["model"].get("target", "correlated"),
        choices=MODEL_TARGETS,
        help="what the U-Net predicts: whitened ε (the paper's loss), correlated L ε, x0, "
        "v, edm (Karras et al.'s preconditioning in whitened coordinates), or "
        "gaussian-residual (whitened ε with a skip to the training set's Gaussian "
        "denoiser); see docs/training.md",
    )
    p.add_argument(
        "--schedule",
        default=cfg.get("schedule", "linear"),
        choices=SCHEDULES,
        help="noise schedule: 'linear' (DDPM's β chain) or 'aligned' (that chain moved so "
        "each Fourier mode's SNR crosses 1 when it does under white noise; measured from "
        "the training set, see docs/training.md)",
    )
    p.add_argument(
        "--noise-alpha",
        type=non_negative_float,
        default=(cfg.get("noise_params") or {}).get("alpha", 1.0),
        help="GFF exponent α (λ_k ∝ |k|^-2α); 1 is the paper's",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output folder (config.json, metrics.jsonl/csv, checkpoints/, samples/); "
        "default runs/<dataset>-<noise>-<preset>",
    )
    p.add_argument(
        "--data-dir",
        type=existing_dir,
        default=cfg.get("data_dir"),
        help="dataset folder (see the dataset's docs); default: the dataset's own search",
    )
    p.add_argument("--steps", type=positive_int, default=train_cfg["steps"], help="training steps")
    p.add_argument(
        "--batch-size", type=positive_int, default=train_cfg["batch_size"], help="global batch"
    )
    p.add_argument("--lr", type=positive_float, default=train_cfg["lr"], help="Adam learning rate")
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=train_cfg.get("seed", 0),
        help="seed of the initial weights, data order and noise",
    )
    p.add_argument(
        "--ckpt-every",
        type=positive_int,
        default=train_cfg["ckpt_every"],
        help="checkpoint period (steps)",
    )
    p.add_argument(
        "--device",
        type=device_name,
        default=cfg.get("device") or default_device(),
        help="cpu, cuda, cuda:1 … (the default is CUDA where this machine has it)",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--sampler",
        type=sampler_name,
        default=train_cfg.get("sample_sampler", "dpmpp_2m"),
        help="sampler for 'sample' (see sdekit.available_samplers())",
    )
    p.add_argument(
        "--sample-steps",
        type=positive_int,
        default=train_cfg.get("sample_steps", 50),
        help="steps (≈ NFE) for 'sample'",
    )
    p.add_argument(
        "--sample-n",
        type=positive_int,
        default=train_cfg.get("sample_n", 64),
        help="number of images for 'sample'",
    )
    p.add_argument("--sample-seed", type=non_negative_int, default=0, help="seed of 'sample'")
    p.add_argument(
        "--clip-x0",
        type=non_negative_float,
        default=1.0,
        help="clamp the model's x0-prediction to [-c, c] while sampling (0: off)",
    )
    p.add_argument(
        "--sampling-grid",
        default="auto",
        choices=SAMPLING_GRIDS,
        help="time grid for 'sample' and 'evaluate': the sampler's own ('own'), DDPM's "
        "noise levels on the run's chain ('reference'), or 'auto': reference for an aligned "
        "schedule, own otherwise",
    )
    p.add_argument(
        "--teleport-snr",
        type=positive_float,
        default=None,
        help="'sample' and 'evaluate': start with the closed-form flow of the training set's "
        "Gaussian approximation (GaussianTeleport) and hand over to the model where the "
        "largest whitened mode reaches this SNR (e.g. 1); default: sample from T",
    )
    p.add_argument(
        "--eval-samplers",
        type=sampler_list,
        default="ancestral,ddim,dpmpp_2m",
        help="comma-separated samplers for 'evaluate'",
    )
    p.add_argument(
        "--eval-steps",
        type=step_list,
        default="1000,100,50,20,10",
        help="comma-separated step counts for 'evaluate'",
    )
    p.add_argument("--eval-n", type=positive_int, default=256, help="samples per (sampler, steps)")
    p.add_argument(
        "--eval-seed",
        type=seed_list,
        default="0",
        help="seed of the samples of 'evaluate'; several (comma-separated, distinct) score "
        "each cell on the union of one n-sample cell per seed",
    )
    p.add_argument(
        "--eval-name",
        default="evaluation",
        help="'evaluate' writes <run-dir>/<name>.json and .md (e.g. a second table on a subset)",
    )
    p.add_argument(
        "--eval-bpd-n",
        type=non_negative_int,
        default=0,
        help="test images for bits/dim in 'evaluate' (0: skip; one ODE solve per batch)",
    )
    return p


def parse_args(description: str, presets: dict, argv=None) -> argparse.Namespace:
    """Parse in two passes: ``--preset`` first, then everything with its defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=list(presets), default=next(iter(presets)))
    known, _ = pre.parse_known_args(argv)
    return build_parser(description, presets, known.preset).parse_args(argv)


def resolve_config(args, presets: dict, dataset: str) -> dict:
    """The preset with the command line's values: the config actually used (config.json)."""
    cfg = copy.deepcopy(presets[args.preset])
    cfg.pop("_about", None)
    cfg["dataset"] = cfg.get("dataset", dataset)
    cfg["noise"] = args.noise
    cfg["schedule"] = args.schedule
    cfg["model"]["target"] = args.target
    if args.noise == "gff":
        cfg["noise_params"] = {**(cfg.get("noise_params") or {}), "alpha": args.noise_alpha}
    cfg["data_dir"] = args.data_dir
    cfg["device"] = args.device
    train = cfg["train"]
    train.update(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        ckpt_every=args.ckpt_every,
        sample_sampler=args.sampler,
        sample_steps=args.sample_steps,
        sample_n=args.sample_n,
    )
    train["compile"] = train.get("compile", False) or args.compile
    train["channels_last"] = train.get("channels_last", False) or args.channels_last
    if args.no_progress:
        train["progress"] = False
    return cfg


def _error(message: str) -> int:
    """One ``error:`` line on stderr; the exit status of a bad input."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_recipe(description: str, presets: dict, dataset: str, argv=None) -> int:
    """Parse ``argv`` and run the command; returns a process exit code (2: bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(description, presets, argv)
    cfg = resolve_config(args, presets, dataset)
    aligned = "-aligned" if cfg["schedule"] == "aligned" else ""
    default_dir = Path("runs") / f"{cfg['dataset']}-{cfg['noise']}{aligned}-{args.preset}"
    run_dir = args.run_dir or default_dir
    try:
        if args.command in ("all", "train"):
            train(cfg, run_dir, resume=not args.no_resume)
        if args.command in ("all", "sample"):
            png, info = sample_run(
                run_dir,
                n=args.sample_n,
                sampler=args.sampler,
                steps=args.sample_steps,
                seed=args.sample_seed,
                grid=args.sampling_grid,
                device=args.device,
                progress=not args.no_progress,
                clip_x0=args.clip_x0 or None,
                teleport=args.teleport_snr,
            )
            print(f"wrote {png} ({info.nfe} model evaluations per image)")
        if args.command == "evaluate":
            summary = evaluate_run(
                run_dir,
                samplers=args.eval_samplers,
                steps_list=args.eval_steps,
                n=args.eval_n,
                device=args.device,
                clip_x0=args.clip_x0 or None,
                bpd_n=args.eval_bpd_n,
                seed=args.eval_seed[0] if len(args.eval_seed) == 1 else args.eval_seed,
                grid=args.sampling_grid,
                teleport=args.teleport_snr,
                name=args.eval_name,
                progress=not args.no_progress,
            )
            print(json.dumps(summary, indent=2))
    except (DatasetError, CheckpointError, ValueError) as err:
        # the library's validation errors name the argument and what was expected
        return _error(str(err))
    except FileNotFoundError as err:
        return _error(f"{err} (train first, or pass --run-dir)")
    return 0
