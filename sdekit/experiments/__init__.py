"""The application layer: experiment configs, the recipes' command line, run folders,
sampling specs resolved against a run, the cell store, scoring, evaluation tables and
reports. It builds on the library packages (covariance, sde, sampling, training, models,
data, metrics) and nothing there imports it; recipes call it."""

from .cells import CellStore
from .cli import build_parser, resolve_config, run_recipe
from .config import build_model, build_sde, event_shape, load_dataset
from .evaluation import evaluate_run
from .runs import TrainedRun, load_trained, open_run, sample_run, train
from .sampling import RunSampler, grid_rule, run_context
from .scoring import reference_set, score_samples

__all__ = [
    "run_recipe",
    "build_parser",
    "resolve_config",
    "build_sde",
    "build_model",
    "event_shape",
    "load_dataset",
    "train",
    "load_trained",
    "open_run",
    "TrainedRun",
    "sample_run",
    "evaluate_run",
    "CellStore",
    "RunSampler",
    "grid_rule",
    "run_context",
    "reference_set",
    "score_samples",
]
