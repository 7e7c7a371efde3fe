"""sdekit where users run it: training and sampling throughput on one GPU, at the paper
preset's model, on synthetic data (no dataset needed).

    python benchmarks/gpu.py                 # one GPU: the paper's 35.7M U-Net (UNet()
                                             # defaults), 3×32×32, training batch 128,
                                             # sampling batch 512 at 20 NFE (≈ 5–8 min)
    python benchmarks/gpu.py --out gpu.json  # also write the figures (.json or .md)
    python benchmarks/gpu.py --tiny          # the same code on CPU at a tiny size (< 1 min)
    python benchmarks/gpu.py --only train    # just the rows whose label contains a word

**Training** goes through :class:`sdekit.training.Trainer` (what the recipes run:
``Trainer.train_step``, with its EMA, gradient clipping, bf16 autocast, ``torch.compile``
and channels_last switches), isotropic noise (``IdentityCovariance``) vs the paper's GFF
(``GFFCovariance``) under ``NIVPSDE``: steps/s, images/s and peak memory per configuration;
the NI overhead is GFF time / isotropic time at the same configuration.

**Sampling** goes through :func:`sdekit.sample` with the same U-Net (random weights: the
speed does not depend on them) at 20 model calls: ``ancestral``, ``dpm_solver_2m`` and
``dpm_solver_2m`` after a :class:`~sdekit.sampling.GaussianTeleport` fitted to the synthetic
images, fp32 and bf16 autocast (ε̂ cast back to the sample's dtype), isotropic vs GFF.

Timing: ``--warmup`` untimed steps (compilation happens there), then ``--repeats`` timed
ones, with ``torch.cuda.synchronize()`` around them. On CPU, bf16 autocast is off (the
Trainer ignores it there; its rows repeat fp32) and ``torch.compile`` rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from sdekit import NIVPSDE, GFFCovariance, IdentityCovariance, sample
from sdekit.data.synthetic import gaussian_field_dataset
from sdekit.models import UNet
from sdekit.sampling import GaussianTeleport
from sdekit.training import TrainConfig, Trainer

NOISES = {"iso": IdentityCovariance, "gff": GFFCovariance}
#: (precision, compile, channels_last) of the training rows, each for both noises
TRAIN_CONFIGS = [
    ("fp32", False, False),
    ("bf16", False, False),
    ("bf16", False, True),
    ("fp32", True, False),
    ("bf16", True, False),
    ("bf16", True, True),
]
SAMPLERS = [("ancestral", False), ("dpm_solver_2m", False), ("dpm_solver_2m", True)]


@dataclass(frozen=True)
class Size:
    """The model and batch sizes of a run."""

    shape: tuple[int, int, int]
    unet: dict
    train_batch: int
    sample_batch: int
    nfe: int


PAPER = Size((3, 32, 32), {}, 128, 512, 20)  # UNet() defaults: the paper preset's 35.7M
TINY = Size(
    (3, 8, 8),
    dict(resolution=8, ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), groups=8),
    8,
    8,
    20,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls (the minimum of
    ``repeats`` timings would hide compile-free jitter; the mean over them is reported)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _sde(noise: str, size: Size, device: torch.device) -> NIVPSDE:
    return NIVPSDE(NOISES[noise](size.shape).to(device=device))


def train_rows(size: Size, device: torch.device, warmup: int, repeats: int, only) -> list[dict]:
    """One row per (precision, compile, channels_last, noise): steps/s, images/s, peak MiB."""
    rows = []
    data = gaussian_field_dataset(4 * size.train_batch, size.shape, seed=0).to(device)
    for precision, compiled, channels_last in TRAIN_CONFIGS:
        for noise in NOISES:
            label = f"train {precision}{' compile' if compiled else ''}"
            label += f"{' channels_last' if channels_last else ''} {noise}"
            if not _wanted(label, only):
                continue
            if compiled and device.type != "cuda":
                rows.append({"label": label, "skipped": "torch.compile rows run on CUDA only"})
                continue
            torch.manual_seed(0)
            cfg = TrainConfig(
                steps=10**9, batch_size=size.train_batch, warmup=100, amp=precision == "bf16",
                compile=compiled, channels_last=channels_last, progress=False,
                log_every=10**9, ckpt_every=10**9,
            )  # fmt: skip
            _reset_peak(device)
            with tempfile.TemporaryDirectory() as run_dir:
                trainer = Trainer(_sde(noise, size, device), UNet(**size.unet), data, cfg,
                                  run_dir, device=device)  # fmt: skip
                sec = _timed(trainer.train_step, device, warmup, repeats)
                loss = trainer.last_loss
            rows.append({
                "label": label, "precision": precision, "compile": compiled,
                "channels_last": channels_last, "noise": noise, "s_per_step": sec,
                "steps_per_s": 1 / sec, "images_per_s": size.train_batch / sec,
                "peak_mib": _peak_mib(device), "loss_finite": math.isfinite(loss),
            })  # fmt: skip
            del trainer
    return rows


class _Autocast(torch.nn.Module):
    """The network under bf16 autocast on CUDA (on CPU, as the Trainer, none: CPU bf16
    convolutions are emulated and slow), ε̂ cast back to the sample's dtype."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            return self.net(x, t).to(x.dtype)


def sample_rows(size: Size, device: torch.device, warmup: int, repeats: int, only) -> list[dict]:
    """One row per (sampler, teleport, precision, noise): images/s at ``size.nfe`` calls."""
    rows = []
    torch.manual_seed(0)
    net = UNet(**size.unet).to(device).eval()
    images = gaussian_field_dataset(256, size.shape, seed=1).images.to(device).float()
    images = images / 127.5 - 1
    for precision in ("fp32", "bf16"):
        model = net if precision == "fp32" else _Autocast(net)
        for name, jump in SAMPLERS:
            for noise in NOISES:
                label = f"sample {name}{' + teleport' if jump else ''} {precision} {noise}"
                if not _wanted(label, only):
                    continue
                sde = _sde(noise, size, device)
                teleport = GaussianTeleport.from_data(sde, images) if jump else None
                gen = torch.Generator(device).manual_seed(0)
                info = {}

                def run(sde=sde, model=model, name=name, teleport=teleport, gen=gen, info=info):
                    with torch.no_grad():
                        x, info["i"] = sample(
                            sde, model, n=size.sample_batch, sampler=name, steps=size.nfe,
                            teleport=teleport, generator=gen, device=device, clip_x0=1.0,
                            return_info=True,
                        )  # fmt: skip
                    info["finite"] = bool(torch.isfinite(x).all())

                _reset_peak(device)
                sec = _timed(run, device, min(warmup, 1), max(1, repeats // 5))
                rows.append({
                    "label": label, "sampler": name, "teleport": jump, "precision": precision,
                    "noise": noise, "nfe": info["i"].nfe, "s_per_batch": sec,
                    "images_per_s": size.sample_batch / sec, "peak_mib": _peak_mib(device),
                    "finite": info["finite"],
                })  # fmt: skip
    return rows


def _wanted(label: str, only) -> bool:
    return only is None or any(word in label for word in only)


def overhead_ratios(rows: list[dict]) -> dict[str, float]:
    """GFF time / isotropic time for every configuration measured with both noises."""
    by = {}
    for r in rows:
        if "noise" in r:
            by.setdefault(r["label"].rsplit(" ", 1)[0], {})[r["noise"]] = r
    out = {}
    for config, pair in by.items():
        if "iso" in pair and "gff" in pair:
            out[config] = pair["iso"]["images_per_s"] / pair["gff"]["images_per_s"]
    return out


def markdown(result: dict) -> str:
    """The figures as markdown tables."""
    lines = [f"device: {result['device']}, torch {result['torch']}, size: {result['size']}", ""]
    lines += ["| configuration | steps/s | images/s | peak MiB | NI overhead (GFF/iso) |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    ratios = result["ni_overhead"]
    for r in result["train"] + result["sample"]:
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped: {r['skipped']} | | | |")
            continue
        steps = f"{r['steps_per_s']:.2f}" if "steps_per_s" in r else "—"
        peak = "—" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        ratio = ratios.get(r["label"].rsplit(" ", 1)[0]) if r["noise"] == "gff" else None
        ratio = "" if ratio is None else f"{ratio:.3f}×"
        lines.append(f"| {r['label']} | {steps} | {r['images_per_s']:.1f} | {peak} | {ratio} |")
    return "\n".join(lines) + "\n"


def run(tiny: bool = False, warmup: int | None = None, repeats: int | None = None, only=None):
    """All measurements as one JSON-ready dict (``tiny``: CPU, :data:`TINY`)."""
    device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
    size = TINY if tiny else PAPER
    warmup = (1 if tiny else 10) if warmup is None else warmup
    repeats = (2 if tiny else 30) if repeats is None else repeats
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (TF32: say so)
        torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    params = sum(p.numel() for p in UNet(**size.unet).parameters())
    result = {
        "device": name, "torch": torch.__version__, "size": asdict(size), "parameters": params,
        "warmup": warmup, "repeats": repeats,
        "train": train_rows(size, device, warmup, repeats, only),
        "sample": sample_rows(size, device, warmup, repeats, only),
    }  # fmt: skip
    result["ni_overhead"] = overhead_ratios(result["train"] + result["sample"])
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny model (< 1 min)")
    parser.add_argument("--out", help="write the figures here (.json, else markdown)")
    parser.add_argument("--warmup", type=int, help="untimed steps per row (default 10; tiny 1)")
    parser.add_argument("--repeats", type=int, help="timed steps per row (default 30; tiny 2)")
    parser.add_argument("--only", help="comma-separated words: the rows whose label has one")
    args = parser.parse_args(argv)
    only = None if args.only is None else args.only.split(",")
    result = run(args.tiny, args.warmup, args.repeats, only)
    text = markdown(result)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(result, indent=1) if args.out.endswith(".json") else text)
    return result


if __name__ == "__main__":
    main()
