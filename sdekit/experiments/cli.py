"""The command line shared by the recipes: presets + overrides → train / sample / evaluate.

Every option is written once, in :data:`OPTIONS`: its flag, type, help and where its value
goes — a key path in the experiment config (its default is then the preset's value there,
else the library default of that field), or a field of the sampling specs that
``sample`` and ``evaluate`` draw with. ``--help`` shows the chosen preset's values as the
defaults (``--preset cpu --help`` shows the ``cpu`` preset's).

Errors: a value argparse rejects, an :class:`~sdekit.errors.InputError` from the library
(a missing dataset, an unreadable checkpoint, a bad combination of values, a diverged or
locked run) or an ``OSError`` of the machine (a read-only folder, a full disk) ends in one
``error: …`` line and exit status 2; SIGINT / SIGTERM during training in a final checkpoint,
one line and status 128 + the signal's number (130, 143). Any other exception is a bug: its
traceback is shown and the status is 1.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import keyword
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..covariance import NOISE_NAMES
from ..errors import InputError
from ..inverse import WEIGHTS
from ..models import DEFAULT_TARGET
from ..sampling import SamplingSpec
from ..training import TrainConfig
from ..training.guards import TrainingInterrupted
from ..training.run_folder import OLD_RUN_ACTIONS
from .config import DATA_NOISE, MODEL_TARGETS, SCHEDULES, train_config_kwargs
from .evaluation import evaluate_run
from .restore import MEASUREMENT_NOISES, RESTORE_METHODS, RESTORE_TASKS, restore_run
from .runs import sample_run, train
from .sampling import SAMPLING_GRIDS, grid_rule

__all__ = ["OPTIONS", "Option", "build_parser", "parse_args", "resolve_config", "run_recipe"]

COMMANDS = ("all", "train", "sample", "evaluate", "restore")


# ------------------------------------------------------------------ value types
def comma_list(item: Callable) -> Callable:
    """A parser of comma-separated ``item`` values (at least one)."""

    def parse(text: str) -> list:
        try:
            values = [item(s.strip()) for s in text.split(",") if s.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return values

    parse.__name__ = f"list of {item.__name__}"
    return parse


def class_choice(text: str):
    """``all``, one class label, or a comma-separated list of them."""
    if text.strip() == "all":
        return "all"
    labels = comma_list(int)(text)
    return labels[0] if len(labels) == 1 else tuple(labels)


def existing_dir(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} does not exist or is not a folder")
    return text


def device_name(text: str) -> str:
    """A device this machine has (``cuda`` only where CUDA is available)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu or cuda[:N]") from None
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


# ------------------------------------------------------------------ the options
@dataclass(frozen=True)
class Option:
    """One command-line option, written once.

    ``config``: the key path of its value in the experiment config (the default is the
    preset's value there, else ``default``, else the :class:`TrainConfig` field's default);
    ``None`` for run options, whose ``default`` is their own. ``flag_value``: a switch
    (store_true) that sets the config value to it."""

    flag: str
    help: str
    type: Callable | None = None
    config: tuple[str, ...] | None = None
    default: Any = None
    choices: tuple | None = None
    flag_value: Any = None

    @property
    def dest(self) -> str:
        name = self.flag.removeprefix("--").replace("-", "_")
        return f"{name}_" if keyword.iskeyword(name) else name  # --class → args.class_


_T = ("train",)
OPTIONS = (
    Option("--noise", "forward-noise covariance (docs/covariance.md): isotropic N(0, I), the "
           "Gaussian Free Field, pink / blue power-law noise, offset noise (diffusers' "
           "noise_offset 0.1, exact), pyramid noise (its stationary equivalent), or 'data': "
           "shaped like the training set's power spectrum", config=("noise",),
           choices=(*NOISE_NAMES, DATA_NOISE)),
    Option("--target", "what the U-Net predicts: whitened ε (the paper's loss), correlated L ε, "
           "x0, v, edm (Karras et al.'s preconditioning in whitened coordinates), or "
           "gaussian-residual (whitened ε with a skip to the training set's Gaussian denoiser); "
           "see docs/training.md", config=("model", "target"), default=DEFAULT_TARGET,
           choices=MODEL_TARGETS),
    Option("--gaussian-structure", "the Gaussian of --target gaussian-residual: 'stationary' "
           "(mean image + power spectrum, FFT-cheap) or 'dense' (mean image + dense covariance: "
           "the best affine denoiser, d <= 4096)", config=("model", "gaussian_structure"),
           choices=("stationary", "dense")),
    Option("--schedule", "noise schedule: 'linear' (DDPM's β chain) or 'aligned' (that chain "
           "moved so each Fourier mode's SNR crosses 1 when it does under white noise; measured "
           "from the training set, see docs/training.md)", config=("schedule",),
           default="linear", choices=SCHEDULES),
    Option("--noise-alpha", "GFF exponent α (λ_k ∝ |k|^-2α); 1 is the paper's (gff only)",
           float, config=("noise_params", "alpha"), default=1.0),
    Option("--data-dir", "dataset folder (see the dataset's docs); default: the dataset's own "
           "search", existing_dir, config=("data_dir",)),
    Option("--device", "cpu, cuda, cuda:1 … (the default is CUDA where this machine has it)",
           device_name, config=("device",),
           default="cuda" if torch.cuda.is_available() else "cpu"),
    Option("--conditional", "a class-conditional U-Net trained on the dataset's labels (with "
           "label dropout for classifier-free guidance); see docs/guidance.md",
           config=("conditional",), flag_value=True),
    # training options: parsed here, validated by TrainConfig (one place)
    Option("--steps", "training steps", int, config=(*_T, "steps")),
    Option("--batch-size", "global batch", int, config=(*_T, "batch_size")),
    Option("--lr", "Adam learning rate", float, config=(*_T, "lr")),
    Option("--seed", "seed of the initial weights, data order and noise", int,
           config=(*_T, "seed")),
    Option("--ckpt-every", "checkpoint period (steps)", int, config=(*_T, "ckpt_every")),
    Option("--label-dropout", "conditional models: probability that a training label is "
           "replaced by the null label", float, config=(*_T, "label_dropout")),
    Option("--compile", "torch.compile the model", config=(*_T, "compile"), flag_value=True),
    Option("--channels-last", "channels_last memory format", config=(*_T, "channels_last"),
           flag_value=True),
    Option("--no-progress", "no progress bars", config=(*_T, "progress"), flag_value=False),
    # sampling options: parsed here, validated by SamplingSpec (one place)
    Option("--sampler", "sampler of 'sample' and of the training run's grids (see "
           "sdekit.available_samplers())", config=(*_T, "sample_sampler")),
    Option("--sample-steps", "model evaluations per image for 'sample'", int,
           config=(*_T, "sample_steps")),
    Option("--sample-n", "number of images for 'sample'", int, config=(*_T, "sample_n")),
    Option("--clip-x0", "clamp the model's x0-prediction to [-c, c] while sampling (0: off)",
           float, config=(*_T, "sample_clip_x0")),
    # run options: not part of the experiment's config
    Option("--run-dir", "output folder (config.json, metrics.jsonl/csv, checkpoints/, samples/);"
           " default runs/<dataset>-<noise>-<preset>", Path),
    Option("--no-resume", "start a new run; on a folder that holds one, --old-run says what to "
           "do with it", flag_value=True),
    Option("--old-run", "with --no-resume on a folder that holds a run: 'archive' moves it to "
           "<run-dir>.archived-<time>, 'remove' deletes it (default: refuse)", default="refuse",
           choices=OLD_RUN_ACTIONS),
    Option("--sample-seed", "seed of 'sample'", int, default=0),
    Option("--sampling-grid", "time grid for 'sample' and 'evaluate': the sampler's own ('own'),"
           " DDPM's noise levels on the run's chain ('reference'), or 'auto': reference for an "
           "aligned schedule, own otherwise", default="auto", choices=SAMPLING_GRIDS),
    Option("--teleport-snr", "'sample' and 'evaluate': start with the closed-form flow of the "
           "training set's Gaussian approximation (GaussianTeleport) and hand over to the model "
           "where the largest whitened mode reaches this SNR (e.g. 1); default: sample from T",
           float),
    Option("--class", "conditional runs, 'sample' and 'evaluate': the class(es) asked for — "
           "one label, a comma-separated list, or 'all' (the default: a block of samples per "
           "class)", class_choice),
    Option("--guidance", "conditional runs: classifier-free guidance scale (1: the conditional "
           "model, 0: the unconditional one; default: none)", float),
    Option("--guidance-interval", "guide only at SDE times t_lo ≤ t ≤ t_hi ('t_lo,t_hi'; "
           "Kynkäänniemi et al. 2024)", comma_list(float)),
    Option("--eval-samplers", "comma-separated samplers for 'evaluate'", comma_list(str),
           default=["ancestral", "ddim", "dpmpp_2m"]),
    Option("--eval-steps", "comma-separated budgets (model evaluations) for 'evaluate'",
           comma_list(int), default=[1000, 100, 50, 20, 10]),
    Option("--eval-n", "samples per (sampler, steps)", int, default=256),
    Option("--eval-seed", "seed of the samples of 'evaluate'; several (comma-separated, "
           "distinct) score each cell on the union of one n-sample cell per seed",
           comma_list(int), default=[0]),
    Option("--eval-name", "'evaluate' writes <run-dir>/<name>.json and .md (e.g. a second "
           "table on a subset)", default="evaluation"),
    Option("--eval-bpd-n", "test images for bits/dim in 'evaluate' (0: skip; one ODE solve per "
           "batch)", int, default=0),
    # restore options (docs/inverse.md); 'restore' samples with --sampler, --sample-steps and
    # --sample-seed
    Option("--task", "'restore': the measurement — inpainting (central box missing), superres "
           "(2× block means) or deblur (Gaussian, 1.5 px)", default="inpainting",
           choices=RESTORE_TASKS),
    Option("--measurement-noise", "'restore': white or GFF-correlated measurement noise",
           default="white", choices=MEASUREMENT_NOISES),
    Option("--noise-std", "'restore': per-pixel standard deviation of the measurement noise "
           "(in the model's [-1, 1] units)", float, default=0.05),
    Option("--method", "'restore': the posterior method (sdekit.inverse.posterior_model)",
           default="pigdm", choices=tuple(RESTORE_METHODS)),
    Option("--posterior-scale", "'restore': the step size s of dps / pigdm", float,
           default=1.0),
    Option("--posterior-weight", "'restore', dps / pigdm: 'none' or 'alpha' (the likelihood "
           "term times α_t, ΠGDM's practical weight; docs/inverse.md); default: the method's "
           "own ('alpha' for pigdm-alpha, else 'none')", choices=WEIGHTS),
    Option("--cg-iters", "'restore', method pigdm: at most this many conjugate-gradient "
           "iterations (vector-Jacobian products) per model evaluation", int, default=20),
    Option("--restore-n", "'restore': images to restore", int, default=8),
    Option("--images", "'restore': an .npz of uint8 images (N, C, H, W) as 'sample' writes "
           "(default: the test set's first --restore-n)", Path),
)  # fmt: skip

_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _get(cfg: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(cfg, dict) or key not in cfg:
            return None
        cfg = cfg[key]
    return cfg


def _default(option: Option, preset: dict):
    """The option's default: the preset's value at its config path, else its own, else
    the TrainConfig field's."""
    if option.config is None:
        return option.default
    value = _get(preset, option.config)
    if value is None:
        value = option.default
    if value is None and option.config[0] == "train":
        value = _TRAIN_DEFAULTS.get(option.config[-1])
    return value


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: …)" except where the help already says what happens without one."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action, argparse._StoreConstAction):
            return action.help
        return super()._get_help_string(action)


def build_parser(description: str, presets: dict, preset: str | None = None):
    """The recipe's parser, its defaults taken from ``presets[preset]`` (default: the first)."""
    preset = preset or next(iter(presets))
    p = argparse.ArgumentParser(description=description, formatter_class=_DefaultsHelp)
    p.add_argument(
        "command", nargs="?", default="all", choices=COMMANDS,
        help="all = train, then sample a PNG grid; train resumes from the run directory's "
        "latest checkpoint; sample / evaluate / restore (an inverse problem, docs/inverse.md) "
        "use the EMA weights",
    )  # fmt: skip
    p.add_argument(
        "--preset", default=preset, choices=list(presets),
        help="hyperparameter preset (the defaults below are its values): "
        + "; ".join(f"{k}: {v['_about']}" for k, v in presets.items()),
    )  # fmt: skip
    for opt in OPTIONS:
        if opt.flag_value is not None:
            p.add_argument(opt.flag, dest=opt.dest, action="store_const", const=opt.flag_value,
                           default=None, help=opt.help)  # fmt: skip
            continue
        default = _default(opt, presets[preset])
        p.add_argument(
            opt.flag, dest=opt.dest, type=opt.type, choices=opt.choices, help=opt.help,
            default=default,
        )  # fmt: skip
    return p


def parse_args(description: str, presets: dict, argv=None) -> argparse.Namespace:
    """Parse in two passes: ``--preset`` first, then everything with its defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=list(presets), default=next(iter(presets)))
    known, _ = pre.parse_known_args(argv)
    return build_parser(description, presets, known.preset).parse_args(argv)


def resolve_config(args, presets: dict, dataset: str) -> dict:
    """The preset with the command line's values at their config paths: the config actually
    used (config.json)."""
    cfg = copy.deepcopy(presets[args.preset])
    cfg.pop("_about", None)
    cfg["dataset"] = cfg.get("dataset", dataset)
    for opt in OPTIONS:
        value = getattr(args, opt.dest)
        if opt.config is None or value is None:
            continue
        if opt.config == ("noise_params", "alpha") and cfg["noise"] != "gff":
            continue  # GFF's α only
        *parents, key = opt.config
        node = cfg
        for name in parents:
            if not isinstance(node.get(name), dict):
                node[name] = dict(node.get(name) or {})
            node = node[name]
        node[key] = value
    return cfg


_SAMPLE_FLAGS = ("--sampler, --sample-steps, --sample-n, --sample-seed, --clip-x0, "
                 "--teleport-snr, --class, --guidance, --guidance-interval")
_EVAL_FLAGS = ("--eval-samplers, --eval-steps, --eval-n, --eval-seed, --clip-x0, "
               "--teleport-snr, --class, --guidance, --guidance-interval")


def _specs(args, cfg: dict, run_dir: Path) -> tuple[SamplingSpec, list[SamplingSpec]]:
    """The spec of 'sample' and the specs of 'evaluate' from the command line (validated by
    :class:`SamplingSpec`; an error names the options); the grid rule is chosen for the
    run's own config (its schedule) where the run exists."""
    train_cfg = cfg["train"]
    config_json = Path(run_dir) / "config.json"
    run_cfg = json.loads(config_json.read_text()) if config_json.is_file() else cfg
    common = dict(
        clip_x0=train_cfg["sample_clip_x0"],
        grid=grid_rule(run_cfg, args.sampling_grid),
        teleport=args.teleport_snr,
        **_conditioning(args, run_cfg),
    )
    try:
        one = SamplingSpec(
            sampler=train_cfg["sample_sampler"], steps=train_cfg["sample_steps"],
            n=train_cfg["sample_n"], seed=args.sample_seed, **common,
        )  # fmt: skip
    except InputError as err:
        raise InputError(f"{_SAMPLE_FLAGS}: {err}") from None
    seeds = args.eval_seed
    try:
        table = [
            SamplingSpec(sampler=s, steps=k, n=args.eval_n, **common,
                         seed=seeds[0] if len(seeds) == 1 else tuple(seeds))  # fmt: skip
            for s in args.eval_samplers
            for k in args.eval_steps
        ]
    except InputError as err:
        raise InputError(f"{_EVAL_FLAGS}: {err}") from None
    return one, table


def _conditioning(args, run_cfg: dict) -> dict:
    """The spec's conditioning fields: ``--class`` (default ``"all"`` for a conditional run),
    ``--guidance``, ``--guidance-interval``; asked of an unconditional run, an error."""
    asked = args.guidance is not None or args.guidance_interval or args.class_ is not None
    if not run_cfg.get("conditional"):
        if asked:
            raise InputError("--class, --guidance and --guidance-interval need a conditional "
                             "run (trained with --conditional)")  # fmt: skip
        return {}
    interval = args.guidance_interval
    if interval is not None and len(interval) != 2:
        raise InputError(f"--guidance-interval takes 't_lo,t_hi', got {interval}")
    fields = {
        "classes": "all" if args.class_ is None else args.class_,
        "guidance": args.guidance,
        "guidance_interval": interval and tuple(interval),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _check_training(cfg: dict) -> None:
    """Build the TrainConfig once before anything runs: its checks name the bad value."""
    try:
        TrainConfig(**train_config_kwargs(cfg))
    except InputError as err:
        raise InputError(
            f"--steps, --batch-size, --lr, --seed, --ckpt-every, --label-dropout: {err}"
        ) from None


def _restore(args, cfg: dict, run_dir: Path, progress: bool) -> dict:
    """The 'restore' command: restore_run with the command line's measurement and method."""
    method, options = RESTORE_METHODS[args.method]
    options = dict(options)
    if method != "projection":
        options["scale"] = args.posterior_scale
        if args.posterior_weight is not None:
            options["weight"] = args.posterior_weight
    if method == "pigdm":
        options["cg_max_iter"] = args.cg_iters
    result = restore_run(
        run_dir, task=args.task, noise=args.measurement_noise, noise_std=args.noise_std,
        method=method, method_options=options, n=args.restore_n, images=args.images,
        seed=args.sample_seed, sampler=cfg["train"]["sample_sampler"],
        steps=cfg["train"]["sample_steps"], device=cfg["device"], data_dir=args.data_dir,
        progress=progress,
    )  # fmt: skip
    return {"task": args.task, "measurement_noise": args.measurement_noise,
            "noise_std": args.noise_std, "method": args.method, **result.summary()}  # fmt: skip


def _error(message: str) -> int:
    """One ``error:`` line on stderr; the exit status of a bad input."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_recipe(description: str, presets: dict, dataset: str, argv=None) -> int:
    """Parse ``argv`` and run the command; returns a process exit code (2: bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(description, presets, argv)
    try:
        cfg = resolve_config(args, presets, dataset)
        aligned = "-aligned" if cfg.get("schedule") == "aligned" else ""
        default_dir = Path("runs") / f"{cfg['dataset']}-{cfg['noise']}{aligned}-{args.preset}"
        run_dir = args.run_dir or default_dir
        progress = cfg["train"].get("progress", True)
        _check_training(cfg)
        one, table = _specs(args, cfg, run_dir)  # checked before any training
        if args.command in ("all", "train"):
            train(cfg, run_dir, resume=not args.no_resume, old_run=args.old_run)
        if args.command in ("all", "sample"):
            png, info = sample_run(
                run_dir, one, device=cfg["device"], progress=progress, data_dir=args.data_dir
            )
            print(f"wrote {png} ({info.nfe} model evaluations per image)")
        if args.command == "evaluate":
            summary = evaluate_run(
                run_dir, table, device=cfg["device"], bpd_n=args.eval_bpd_n,
                name=args.eval_name, progress=progress, data_dir=args.data_dir,
            )  # fmt: skip
            print(json.dumps(summary, indent=2))
        if args.command == "restore":
            print(json.dumps(_restore(args, cfg, run_dir, progress), indent=2))
    except InputError as err:  # the library's validation: names the argument and the fix
        return _error(str(err))
    except TrainingInterrupted as stop:  # SIGINT / SIGTERM, after a final checkpoint
        _error(str(stop))
        return 128 + stop.signum
    except OSError as err:  # the machine said no: a read-only folder, a full disk, …
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}")
    return 0
