"""Samplers: one entry point :func:`sample`, a registry of small pure functions."""

from . import (  # noqa: F401  (each module registers its sampler)
    ancestral,
    ddim,
    deis,
    dpm_solver,
    dpmpp_2m_sde,
    euler,
    euler_maruyama,
    heun,
    ipndm,
    pc,
    torchdiffeq_backend,
    torchsde_backend,
    unipc,
)
from .engine import (
    SAMPLERS,
    Grid,
    NonFiniteModelOutput,
    SampleInfo,
    SamplerEntry,
    available_samplers,
    register_prefix,
    register_sampler,
    resolve_sampler,
    run_plan,
)
from .entry_point import sample
from .grids import GRIDS, karras, logsnr_uniform, time_quadratic, time_uniform, transfer_grid
from .optimize_grid import GridOptimization, optimize_grid
from .spec import (
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    GRID_RULES,
    SamplingContext,
    SamplingPlan,
    SamplingSpec,
    resolve,
)
from .teleport import GaussianTeleport

__all__ = [
    "transfer_grid",
    "sample",
    "available_samplers",
    "register_sampler",
    "SAMPLERS",
    "Grid",
    "SampleInfo",
    "NonFiniteModelOutput",
    "SamplerEntry",
    "register_prefix",
    "resolve_sampler",
    "GRIDS",
    "time_uniform",
    "logsnr_uniform",
    "karras",
    "time_quadratic",
    "optimize_grid",
    "GridOptimization",
    "GaussianTeleport",
    "SamplingSpec",
    "SamplingContext",
    "SamplingPlan",
    "resolve",
    "run_plan",
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "GRID_RULES",
]
