"""The KACT_* environment both services read: typed values with bounds, and one error naming the variable."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import urlsplit

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
POSTGRES_SCHEMES = ("postgresql", "postgres")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


class SettingError(ValueError):
    """A KACT_* variable holds a value the service cannot run with; the message names it."""


class Environment:
    """Reads KACT_* variables; an unset or empty variable gives the default."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name) or default

    def optional(self, name: str) -> str | None:
        return self._env.get(name) or None

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise SettingError(f"{name} must be an integer {_range(low, high)}, got {raw!r}")
        return value

    def seconds(self, name: str, default: float, *, low: float = 0.0, above_low: bool = False) -> float:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (above_low and value == low):
            bound = f"greater than {low:g}" if above_low else f"at least {low:g}"
            raise SettingError(f"{name} must be a number of seconds {bound}, got {raw!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise SettingError(f"{name} must be {'/'.join(TRUE)} or {'/'.join(FALSE)}, got {raw!r}")

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        """The URL in `name` (None when unset): one of `schemes`, with a host and a valid port."""
        raw = self._env.get(name, "").strip()
        if not raw:
            return None
        example = f"{schemes[0]}://host:port"
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            # Never echo a password: only what follows the credentials is shown.
            raise SettingError(f"{name} must be a URL like {example} ({' or '.join(schemes)}), got {_redacted(raw)}")
        return raw


def _range(low: int, high: int | None) -> str:
    return f"of at least {low}" if high is None else f"from {low} to {high}"


def _redacted(url: str) -> str:
    if "@" not in url:
        return repr(url)
    return repr("***@" + url.rsplit("@", 1)[1])
