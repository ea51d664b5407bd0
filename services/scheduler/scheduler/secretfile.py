"""Owner-only files and folders: secrets created once, then read back on every later start; logs."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

OWNER_ONLY = 0o600
OWNER_ONLY_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by its owner only (0700 whatever the umask); an existing folder
    keeps its mode."""
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=OWNER_ONLY_DIR)
    except FileExistsError:
        return path  # another process created it a moment ago, with this same mode
    # mkdir's mode only loses the umask's bits; a umask such as 0o277 would leave the owner locked out.
    path.chmod(OWNER_ONLY_DIR)
    return path


def open_private(path: Path, *, append: bool = True) -> BinaryIO:
    """`path` opened for writing (appending, else truncated) with mode 0600 whatever the umask: a file
    someone widened is narrowed again, as logs may name people and settings."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, OWNER_ONLY)
    try:
        os.fchmod(fd, OWNER_ONLY)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")


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
