"""The layers of docs/architecture.md hold: imports only point down, the library holds no
command line, and each formula lives on the SDE."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sdekit"
RECIPES = sorted((ROOT.parent / "recipes").glob("*.py"))

#: lower number = lower layer; a module may import its own layer or lower ones only
LAYERS = {
    "_progress": 0,
    "_cg": 0,
    "errors": 0,
    "files": 0,
    "covariance": 0,
    "sde": 1,
    "data": 1,
    "models": 1,
    "guidance": 1,
    "inverse": 1,
    "integrations": 2,
    "sampling": 2,
    "testing": 2,
    "likelihood": 3,
    "metrics": 3,
    "training": 4,
    "experiments": 5,
}
LIBRARY = [name for name in LAYERS if name != "experiments"]


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    """(line, top-level sdekit package) of every relative or absolute sdekit import."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(ROOT).parts) - 1  # 0 for sdekit/x.py, 1 for sdekit/pkg/x.py
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("sdekit."):
                    yield node.lineno, node.module.split(".")[1]
                continue
            up = node.level - 1  # levels above the file's own package
            if up < depth:
                continue  # within its own package
            if node.module:
                yield node.lineno, node.module.split(".")[0]
            else:
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sdekit."):
                    yield node.lineno, alias.name.split(".")[1]


FILES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    own = LAYERS[_package(path)]
    for line, target in _imports(path):
        assert target in LAYERS, f"{path}:{line} imports unknown package {target}"
        assert LAYERS[target] <= own, (
            f"{path.relative_to(ROOT)}:{line} imports sdekit.{target} (layer {LAYERS[target]}) "
            f"from layer {own}: imports must point down (docs/architecture.md)"
        )


@pytest.mark.parametrize("package", LIBRARY)
def test_library_packages_have_no_command_line(package):
    base = ROOT / package
    files = list(base.rglob("*.py")) if base.is_dir() else [ROOT / f"{package}.py"]
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "argparse" not in names, f"{path} imports argparse"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"{path}:{node.lineno} calls print (use logging)")


def test_samplers_take_the_drift_and_denoiser_from_the_sde():
    sampling = ROOT / "sampling"
    for path in sampling.glob("*.py"):
        text = path.read_text()
        assert "drift_coef(" not in text, f"{path.name} rebuilds the reverse drift"
        assert "def data_prediction" not in text


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipes_are_presets_plus_a_call(path):
    """A recipe holds its presets, its command line and a call into sdekit.experiments;
    the logic lives in the application (docs/architecture.md)."""
    lines = len(path.read_text().splitlines())
    assert lines <= 120, f"recipes/{path.name} has {lines} lines (> 120): move its logic"


@pytest.mark.parametrize(
    "path, name, limit",
    [("experiments/evaluation.py", "evaluate_run", 60), ("training/trainer.py", "Trainer", 220)],
)
def test_the_application_loops_stay_small(path, name, limit):
    """The evaluation loop and the Trainer class stay a screenful or a few."""
    tree = ast.parse((ROOT / path).read_text())
    (node,) = [
        n for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
    ]
    lines = node.end_lineno - node.lineno + 1
    assert lines <= limit, f"{path}: {name} has {lines} lines (> {limit})"
