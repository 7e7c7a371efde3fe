"""How samples are drawn, as one value: :class:`SamplingSpec`, and its resolution.

A spec is frozen and JSON-serialisable: the sampler, the budget ``steps``, the grid (a named
grid, explicit times, or a rule resolved against context), solver options, the final
denoising step, the x̂₀ clamp, a teleport's hand-over SNR, the last time ``eps``, the number
of samples and the seed(s), and the conditioning of a class-conditional model (the classes
asked for and classifier-free guidance). It is validated once, when built, and resolved once
against an SDE by :func:`resolve` into a :class:`SamplingPlan` (the sampler's registry entry, the
:class:`~sdekit.sampling.engine.Grid`, the teleport object), which
:func:`~sdekit.sampling.engine.run_plan` executes. :func:`~sdekit.sample`'s keywords build a
spec; the application stores evaluation cells under :meth:`SamplingSpec.key`.

**The budget.** ``steps`` is the number of model evaluations per sample, the final
denoising step included: a sampler spends exactly that many where its structure allows and
the largest count below it otherwise (Heun, 2 per interval plus the denoising call, makes
19 of 20). The grid then has ``entry.intervals(steps − denoise)`` intervals. Samplers whose
count is not known in advance (adaptive ``torchdiffeq`` methods) take ``steps=None``.

**Conditioning** (docs/guidance.md). ``classes`` asks a class-conditional model for one
label, a list of labels, or ``"all"`` (0 … K−1): the n samples come in contiguous blocks,
one per class (:func:`~sdekit.models.labels.class_labels`); ``guidance`` wraps the model in
:func:`~sdekit.guidance.classifier_free` with that scale (diffusers' convention: 1 is the
conditional model), ``guidance_interval`` = (t_lo, t_hi) in SDE time and
``guidance_rescale`` = φ. The conditioning fields are left out of :meth:`SamplingSpec.to_dict`
(and so of :meth:`SamplingSpec.key`) while unset, so the keys of unconditional specs are
those they always had.

**Grid rules** need context, given to :func:`resolve`:

- ``"reference"``: the sampler's own grid on ``context.reference_sde`` moved to the sampled
  SDE at equal log-SNR (:func:`~sdekit.sampling.transfer_grid`): e.g. DDPM's noise levels on
  an aligned chain;
- ``"optimized"``: :func:`~sdekit.sampling.optimize_grid` for ``context.model`` with the
  same budget and teleport (``grid_options``: ``n``, ``seed``, ``max_evaluations``,
  ``reference_steps``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..guidance import check_interval
from ..sde import SDE
from .afs import afs_option
from .engine import Grid, SamplerEntry, resolve_sampler
from .grids import GRIDS, transfer_grid

__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "CONDITIONING_FIELDS",
    "GRID_RULES",
    "SamplingSpec",
    "SamplingContext",
    "SamplingPlan",
    "resolve",
    "budget_intervals",
]

#: the sampler :func:`~sdekit.sample` and the recipes use unless told otherwise
DEFAULT_SAMPLER = "dpm_solver_2m"
#: the model-evaluation budget per sample unless told otherwise
DEFAULT_STEPS = 20
#: the conditioning fields: absent from to_dict() / key() while None (old keys unchanged)
CONDITIONING_FIELDS = ("classes", "guidance", "guidance_interval", "guidance_rescale")
#: grid names that are rules resolved against a :class:`SamplingContext`
GRID_RULES = ("reference", "optimized")
_OPTIMIZED_OPTIONS = {"n": 8, "seed": 1, "max_evaluations": 600, "reference_steps": 400}


def _number(value, name: str, kind=float, positive: bool = True):
    """``value`` as a finite ``kind`` (> 0 when ``positive``; ``None`` passes)."""
    if value is None:
        return None
    integral = kind is int and isinstance(value, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        kind is int and not integral
    ):
        what = "an int >= 1" if kind is int else "a number"
        raise InputError(f"{name} must be {what} or None, got {value!r}")
    if not math.isfinite(value) or (positive and not value > 0):
        what = "an int >= 1" if kind is int else "> 0 and finite" if positive else "finite"
        raise InputError(f"{name} must be {what}, got {value!r}")
    return kind(value)


def _seeds(seed) -> int | tuple[int, ...]:
    """An int >= 0, or a non-empty tuple of distinct ones."""
    many = not isinstance(seed, int)
    seeds = tuple(seed) if many and isinstance(seed, Sequence) else (seed,)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise InputError(f"seed must be an integer >= 0 or a list of them, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seed: the sampling seeds must be distinct, got {list(seeds)}")
    return seeds if many else seeds[0]


def _classes(classes):
    """``None``, ``"all"``, a label >= 0, or a non-empty tuple of distinct labels >= 0 (the
    model's number of classes bounds them when sampling)."""
    if classes is None or classes == "all":
        return classes
    many = isinstance(classes, (list, tuple))
    values = tuple(classes) if many else (classes,)
    if not values or any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in values):
        raise InputError(
            f"classes must be a class label (an int >= 0), a non-empty list of them, or "
            f"'all', got {classes!r}"
        )
    if len(set(values)) != len(values):
        raise InputError(f"classes must be distinct, got {list(values)}")
    return values if many else values[0]


def _json_value(value, name: str):
    """A JSON scalar (or a list of them) as a hashable value."""
    if isinstance(value, (list, tuple)):
        return tuple(_json_value(v, name) for v in value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InputTypeError(f"{name} must hold numbers, strings or booleans, got {value!r}")


def _frozen_mapping(value, name: str) -> tuple[tuple[str, Any], ...]:
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise InputTypeError(f"{name} must be a dict, got {type(value).__name__}")
    if any(not isinstance(k, str) for k in value):
        raise InputTypeError(f"{name}: keys must be strings, got {list(value)}")
    return tuple(sorted((k, _json_value(v, f"{name}[{k!r}]")) for k, v in value.items()))


@dataclass(frozen=True)
class SamplingSpec:
    """How samples are drawn (module docstring). Every field is validated when built.

    **Fields:**
    - ``sampler``: a name from :func:`~sdekit.available_samplers`.
    - ``steps``: model evaluations per sample (``None``: :data:`DEFAULT_STEPS`, or what an
      explicit grid implies, or nothing for adaptive solvers).
    - ``grid``: ``None`` (the sampler's own), a name in :data:`~sdekit.sampling.GRIDS`, a
      rule in :data:`GRID_RULES`, or explicit decreasing times (a tuple of floats).
    - ``grid_options``: parameters of a grid rule (``"optimized"``: ``n``, ``seed``,
      ``max_evaluations``, ``reference_steps``).
    - ``options``: the sampler's keyword options (e.g. ``{"eta": 1.0}``).
    - ``denoise``: the final denoising step (``None``: the sampler's choice).
    - ``clip_x0``: clamp x̂₀ to [−c, c] at every evaluation (``None`` or 0: off).
    - ``teleport``: the hand-over SNR of a :class:`~sdekit.sampling.GaussianTeleport` of the
      data (``None``: sample from T).
    - ``eps``: the last grid time (``None``: the SDE's default).
    - ``n``: samples to draw; ``seed``: the sampling seed, or several distinct ones (a
      pooled evaluation: :meth:`per_seed` splits it).
    - ``classes``: the labels asked of a class-conditional model: an int, a tuple of
      distinct ints, or ``"all"`` (module docstring; ``None``: no labels from the spec).
    - ``guidance``: the classifier-free guidance scale s (``None``: no guidance; needs
      labels, from ``classes`` or ``model_kwargs={"y": ...}``).
    - ``guidance_interval``: ``(t_lo, t_hi)``, guide only at those SDE times.
    - ``guidance_rescale``: φ ∈ [0, 1] of CFG-rescale (``None`` or 0: off).
    """

    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    grid: str | tuple[float, ...] | None = None
    grid_options: tuple = field(default=())
    options: tuple = field(default=())
    denoise: bool | None = None
    clip_x0: float | None = None
    teleport: float | None = None
    eps: float | None = None
    n: int | None = None
    seed: int | tuple[int, ...] = 0
    classes: int | tuple[int, ...] | str | None = None
    guidance: float | None = None
    guidance_interval: tuple[float, float] | None = None
    guidance_rescale: float | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        resolve_sampler(self.sampler)  # names the valid samplers otherwise
        set_(self, "steps", _number(self.steps, "steps", int))
        grid = self.grid
        if isinstance(grid, str):
            if grid not in GRIDS and grid not in GRID_RULES:
                valid = ", ".join([*GRIDS, *GRID_RULES])
                raise InputError(f"unknown grid {grid!r}; valid grids: {valid} or explicit times")
        elif grid is not None:
            t = torch.as_tensor(grid, dtype=torch.float64).flatten()
            if t.numel() < 1 or not bool(torch.isfinite(t).all()):
                raise InputError("grid must contain at least one finite time")
            set_(self, "grid", tuple(float(v) for v in t))
        set_(self, "grid_options", _frozen_mapping(self.grid_options, "grid_options"))
        set_(self, "options", _frozen_mapping(self.options, "options"))
        if self.denoise is not None and not isinstance(self.denoise, bool):
            raise InputTypeError(f"denoise must be True, False or None, got {self.denoise!r}")
        clip = None if self.clip_x0 == 0 else self.clip_x0  # 0: off, as None
        set_(self, "clip_x0", _number(clip, "clip_x0"))
        set_(self, "teleport", _number(self.teleport, "teleport (a max SNR)"))
        set_(self, "eps", _number(self.eps, "eps", positive=False))  # range: resolve()
        set_(self, "n", _number(self.n, "n", int))
        set_(self, "seed", _seeds(self.seed))
        set_(self, "classes", _classes(self.classes))
        set_(self, "guidance", _number(self.guidance, "guidance (a CFG scale)", positive=False))
        guidance_options = (self.guidance_interval, self.guidance_rescale) != (None, None)
        if self.guidance is None and guidance_options:
            raise InputError("guidance_interval and guidance_rescale need guidance (a scale)")
        interval = check_interval(self.guidance_interval, "guidance_interval")
        set_(self, "guidance_interval", interval)
        rescale = None if self.guidance_rescale == 0 else self.guidance_rescale  # 0: off
        rescale = _number(rescale, "guidance_rescale", positive=False)
        if rescale is not None and not 0 <= rescale <= 1:
            raise InputError(f"guidance_rescale must lie in [0, 1], got {rescale!r}")
        set_(self, "guidance_rescale", rescale)

    # ------------------------------------------------------------------ values
    @property
    def seeds(self) -> tuple[int, ...]:
        return self.seed if isinstance(self.seed, tuple) else (self.seed,)

    def per_seed(self) -> list[SamplingSpec]:
        """One spec per sampling seed (a pooled evaluation's cells)."""
        return [replace(self, seed=s) for s in self.seeds]

    def replace(self, **changes) -> SamplingSpec:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    @property
    def sampler_options(self) -> dict:
        return dict(self.options)

    @property
    def entry(self) -> SamplerEntry:
        return resolve_sampler(self.sampler)

    def to_dict(self) -> dict:
        """Plain JSON values; :meth:`from_dict` rebuilds the same spec."""
        d = asdict(self)
        d["grid"] = list(self.grid) if isinstance(self.grid, tuple) else self.grid
        d["grid_options"], d["options"] = dict(self.grid_options), dict(self.options)
        d["seed"] = list(self.seed) if isinstance(self.seed, tuple) else self.seed
        for name in CONDITIONING_FIELDS:  # unset: absent, so older keys stay the same
            if d[name] is None:
                del d[name]
            elif isinstance(d[name], tuple):
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> SamplingSpec:
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InputError(f"unknown sampling fields {sorted(unknown)}")
        return cls(**d)

    def key(self) -> str:
        """A stable hash of the spec (16 hex digits): the same spec, the same key."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short readable name, e.g. ``ddim_20nfe`` or ``ancestral_100nfe_teleport1``."""
        steps = "" if self.steps is None else f"_{self.steps}nfe"
        jump = "" if self.teleport is None else f"_teleport{self.teleport:g}"
        return f"{self.sampler.replace(':', '-')}{steps}{jump}{self._conditioning_label()}"

    def _conditioning_label(self) -> str:
        """e.g. ``_class3``, ``_classes0-1-2``, ``_classall_cfg1.5_interval0.1-0.7_rescale0.7``."""
        out = ""
        if self.classes is not None:
            many = isinstance(self.classes, tuple)
            text = "-".join(map(str, self.classes)) if many else str(self.classes)
            out += f"_class{'es' if many else ''}{text}"
        if self.guidance is not None:
            out += f"_cfg{self.guidance:g}"
        if self.guidance_interval is not None:
            out += "_interval{:g}-{:g}".format(*self.guidance_interval)
        if self.guidance_rescale is not None:
            out += f"_rescale{self.guidance_rescale:g}"
        return out


@dataclass(frozen=True)
class SamplingContext:
    """What grid rules and a data teleport need: a reference SDE (``"reference"``), the
    model (``"optimized"``), the data (``teleport``: images, or a callable giving them),
    the device and dtype of the prior draws a rule makes."""

    reference_sde: SDE | None = None
    model: Callable | None = None
    data: Any = None
    device: Any = None
    dtype: torch.dtype | None = None


@dataclass(frozen=True)
class SamplingPlan:
    """A spec resolved against an SDE: what :func:`~sdekit.sampling.engine.run_plan` runs."""

    spec: SamplingSpec
    sde: SDE
    entry: SamplerEntry
    grid: Grid
    teleport: Any = None  # a GaussianTeleport

    @property
    def options(self) -> dict:
        """The sampler's keyword options (``afs`` is the engine's, :mod:`.afs`)."""
        return {k: v for k, v in self.spec.sampler_options.items() if k != "afs"}

    @property
    def afs(self) -> bool:
        return bool(self.spec.sampler_options.get("afs", False))


def budget_intervals(entry: SamplerEntry, spec: SamplingSpec, budget: int) -> int | None:
    """Grid intervals a budget of model evaluations (the final denoising step excluded)
    buys with ``entry`` (``None``: the sampler's calls are not known in advance); with the
    analytic first step (option ``afs``) what ``budget + 1`` buys."""
    budget += int(spec.sampler_options.get("afs", False) is True)  # one call free (.afs)
    if entry.intervals is not None:
        return entry.intervals(budget, spec.sampler_options)
    if entry.evals_per_step is None:
        return None
    return budget // entry.evals_per_step


def _explicit_grid(sde: SDE, times, denoise: bool, start) -> tuple[Tensor, bool]:
    t = torch.as_tensor(times, dtype=torch.float64).flatten()
    sde.check_time(t, "grid")
    if start is not None and abs(float(t[0]) - start) > 1e-9:
        raise InputError(
            f"an explicit grid must start where the teleport hands over "
            f"(t = {start:.6g}), got grid[0] = {float(t[0]):.6g}"
        )
    if t.numel() > 1 and not bool((t[1:] < t[:-1]).all()):
        raise InputError("grid must be strictly decreasing (from T towards 0)")
    if float(sde.marginal(t[-1:])[1]) == 0.0:  # ends at a noise-free time: denoise there
        t, denoise = t[:-1], True
        if t.numel() == 0:
            raise InputError("grid must contain a time with σ_t > 0 before the final t = 0")
    return t, denoise


def _reference_grid(spec, sde, entry, intervals, eps, start, context) -> Tensor:
    """The sampler's own grid on ``context.reference_sde``, moved to ``sde`` at equal
    log-SNR; from the reference time of the same log-SNR as ``start`` when given."""
    ref = context.reference_sde
    if ref is None:
        raise InputError("grid 'reference' needs a reference SDE (SamplingContext.reference_sde)")
    ref_start = None
    if start is not None:
        lam = sde.log_snr(torch.tensor(float(start)))
        ref_start = min(float(ref.t_of_log_snr(lam)), ref.T)
    times = transfer_grid(
        GRIDS[entry.default_grid](ref, intervals + 1, ref.default_eps, start=ref_start), ref, sde
    )
    if start is not None:
        times[0] = float(start)  # exactly the hand-over time (the maps round-trip to rounding)
    return times


def _optimized_grid(spec, sde, entry, intervals, eps, start, context, teleport) -> Tensor:
    from .conditioning import conditioned_model
    from .optimize_grid import optimize_grid

    if context.model is None:
        raise InputError("grid 'optimized' needs the model (SamplingContext.model)")
    opts = {**_OPTIMIZED_OPTIONS, **dict(spec.grid_options)}
    unknown = set(opts) - set(_OPTIMIZED_OPTIONS)
    if unknown:
        raise InputError(f"grid 'optimized': unknown grid_options {sorted(unknown)}")
    device = context.device
    gen = torch.Generator(device or "cpu").manual_seed(int(opts["seed"]))
    # the grid is fitted to the model as it will be sampled: the spec's classes and guidance
    model = conditioned_model(spec, context.model, None, int(opts["n"]), device)
    return optimize_grid(
        sde, model, sampler=spec.sampler, steps=spec.steps, denoise=spec.denoise,
        n=int(opts["n"]), generator=gen, eps=eps, teleport=teleport,
        max_evaluations=int(opts["max_evaluations"]),
        reference_steps=int(opts["reference_steps"]), clip_x0=spec.clip_x0,
        dtype=context.dtype, device=device, **spec.sampler_options,
    )  # fmt: skip


def _teleport_of(spec: SamplingSpec, sde: SDE, teleport, context: SamplingContext):
    """The teleport object: ``teleport`` as given, or fitted to ``context.data``."""
    if teleport is not None:
        if teleport.sde is not sde:
            raise InputError("teleport was built for another SDE than the one sampled")
        if spec.teleport is not None and abs(teleport.max_snr - spec.teleport) > 1e-12:
            raise InputError(
                f"the teleport's max SNR {teleport.max_snr:g} differs from the spec's "
                f"{spec.teleport:g}"
            )
        return teleport
    if spec.teleport is None:
        return None
    if context.data is None:
        raise InputError("teleport (a max SNR) needs the data (SamplingContext.data)")
    from .teleport import GaussianTeleport

    data = context.data() if callable(context.data) else context.data
    return GaussianTeleport.from_data(sde, data, spec.teleport)


def resolve(
    spec: SamplingSpec,
    sde: SDE,
    context: SamplingContext | None = None,
    *,
    teleport=None,
) -> SamplingPlan:
    """The :class:`SamplingPlan` of ``spec`` on ``sde``: the grid's times (budget, named
    grid, explicit times or a rule), the denoising choice and the teleport, checked once.

    ``teleport``: a ready :class:`~sdekit.sampling.GaussianTeleport` (else one is fitted to
    ``context.data`` when ``spec.teleport`` is set)."""
    context = context or SamplingContext()
    entry = spec.entry
    eps = sde.default_eps if spec.eps is None else spec.eps
    if not (0 < eps < sde.T):
        raise InputError(f"eps must lie in (0, T={sde.T}), got {eps}")
    jump = _teleport_of(spec, sde, teleport, context)
    afs_option(spec.sampler_options, entry, jump)
    start = None if jump is None else jump.time
    if start is not None and not eps < start:
        raise InputError(f"the teleport's hand-over time {start:.6g} is not above eps={eps}")
    denoise = entry.default_denoise if spec.denoise is None else spec.denoise
    if isinstance(spec.grid, tuple):
        t, denoise = _explicit_grid(sde, spec.grid, denoise, start)
        if spec.steps is None:
            return SamplingPlan(spec, sde, entry, Grid.from_times(sde, t, denoise), jump)
        bought = budget_intervals(entry, spec, spec.steps - int(denoise))
        if bought != t.numel() - 1:
            raise InputError(
                f"steps={spec.steps} buys {bought} intervals of {spec.sampler!r} but the grid "
                f"has {t.numel() - 1}; give steps=None to use the grid as it is"
            )
        grid = Grid.from_times(sde, t, denoise, budget=_sampler_budget(spec, spec.steps, denoise))
        return SamplingPlan(spec, sde, entry, grid, jump)
    if spec.grid == "optimized":
        spec_b = spec if spec.steps is not None else spec.replace(steps=DEFAULT_STEPS)
        t = _optimized_grid(spec_b, sde, entry, None, eps, start, context, jump)
        return resolve(spec_b.replace(grid=tuple(t.tolist())), sde, context, teleport=jump)
    intervals, budget = _intervals(spec, entry, denoise)
    if spec.grid == "reference":
        t = _reference_grid(spec, sde, entry, intervals, eps, start, context)
        t, denoise = _explicit_grid(sde, t, denoise, start)
    else:
        t = GRIDS[spec.grid or entry.default_grid](sde, intervals + 1, eps, start=start)
    return SamplingPlan(spec, sde, entry, Grid.from_times(sde, t, denoise, budget=budget), jump)


def _sampler_budget(spec: SamplingSpec, steps: int, denoise: bool) -> int:
    """The grid's budget: the calls the sampler makes on the intervals, the final denoising
    step excluded, the analytic first step's free call included."""
    return steps - int(denoise) + int(spec.sampler_options.get("afs", False) is True)


def _intervals(spec: SamplingSpec, entry: SamplerEntry, denoise: bool) -> tuple[int, int | None]:
    """(intervals, budget of the intervals) for a named grid or rule."""
    bought = budget_intervals(entry, spec, 1)
    if bought is None:  # adaptive: the grid only gives the ends
        if spec.steps is not None:
            raise InputError(
                f"{spec.sampler!r} chooses its own steps (its model calls are not known in "
                "advance): give steps=None, and rtol/atol in options"
            )
        return 1, None
    steps = DEFAULT_STEPS if spec.steps is None else spec.steps
    budget = steps - int(denoise)
    intervals = budget_intervals(entry, spec, budget)
    budget = _sampler_budget(spec, steps, denoise)
    if intervals < 1 and not (denoise and budget == 0):
        raise InputError(
            f"steps={steps} leaves no interval for {spec.sampler!r}"
            + (" after the final denoising step" if denoise else "")
        )
    return max(intervals, 0), budget
