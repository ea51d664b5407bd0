"""Secrets kept in owner-only files: created once, then read back on every later start."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

OWNER_ONLY = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by its owner only; an existing folder keeps its mode."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret stored at `path`, or a new one from `make()` stored there with mode 0600."""
    if not path.exists():
        _create(path, make())
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        # Someone widened the mode by hand: a secret must stay readable by its owner only.
        path.chmod(OWNER_ONLY)
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise RuntimeError(f"the secret file {path} is empty: delete it to generate a new one")
    return secret


def _create(path: Path, secret: str) -> None:
    # Write a private temporary file, then link it into place: the link is atomic and
    # fails if the name exists, so two processes starting at once agree on one secret
    # and neither ever reads a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        # If another process created it first, its secret wins.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
