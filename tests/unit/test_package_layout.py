"""The distribution lists every package of the source tree: a wheel (not only an editable install) holds them all."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_with_an_init_is_in_the_distribution() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for name, where in setuptools["package-dir"].items():
        base = ROOT / where
        for init in base.rglob("__init__.py"):
            found.add(".".join([name, *init.parent.relative_to(base).parts]))
    assert set(setuptools["packages"]) == found
