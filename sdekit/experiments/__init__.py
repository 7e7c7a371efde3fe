"""The application layer: experiment configs, the recipes' command line, run folders and
evaluation tables. It builds on the library packages (covariance, sde, sampling,
training, models, data, metrics) and nothing there imports it; recipes call it."""

from .cli import build_parser, resolve_config, run_recipe
from .config import build_model, build_sde, event_shape, load_dataset
from .evaluation import EvalCell, cell_path, evaluate_run
from .runs import draw_samples, load_trained, sample_run, train

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
    "draw_samples",
    "sample_run",
    "evaluate_run",
    "EvalCell",
    "cell_path",
]
