"""The README's code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(code):
    exec(compile(code, str(README), "exec"), {})


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "pip install torch==2.13.0" in text
    assert "python recipes/fashion_mnist_nivp.py --preset smoke" in text and "pytest -q" in text
    assert "apt-get install -y dataset-fashion-mnist" in text
