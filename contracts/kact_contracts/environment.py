"""The KACT_* environment both services read: typed values with bounds, and one error naming the variable."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
POSTGRES_SCHEMES = ("postgresql", "postgres")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


class SettingError(ValueError):
    """A KACT_* variable holds a value the service cannot run with; the message names it."""


@dataclass(frozen=True)
class Form:
    """What a name must look like, and how the error says so."""

    pattern: re.Pattern[str]
    description: str


# JetStream stream and consumer names end up in subjects and file names: NATS forbids whitespace, '.', '*', '>'
# and path separators, and recommends under 32 characters (docs.nats.io, "Naming Streams, Consumers, and
# Accounts"). Only the safe subset is taken.
NATS_NAME = Form(re.compile(r"[A-Za-z0-9_-]{1,32}"), "1 to 32 letters, digits, '_' or '-'")
# The first tokens of every subject: no wildcard ('*', '>'), no whitespace, no empty token.
NATS_SUBJECT_PREFIX = Form(re.compile(r"(?=.{1,64}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"),
                           "NATS subject tokens of letters, digits, '_' or '-' joined by '.', at most 64 characters")
# The schema is named unquoted in some statements (the event store's library): lower case, so that it means the
# same quoted or not; at most 63 bytes (PostgreSQL's NAMEDATALEN); pg_ names are the system's.
SCHEMA_NAME = Form(re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}"),
                   "a PostgreSQL schema name: a lower-case letter or '_', then up to 62 lower-case letters, digits "
                   "or '_' (not pg_...)")
# The log format (`kact_contracts.logs`): auto is the console format on a terminal, JSON otherwise.
LOG_FORMAT = Form(re.compile(r"(?i)auto|json|console"), "auto, json or console")
LOG_LEVEL = Form(re.compile(r"(?i)debug|info|warning|error|critical"), "DEBUG, INFO, WARNING, ERROR or CRITICAL")
AES_KEY_BYTES = (16, 24, 32)  # the key sizes AES (eventsourcing's AESCipher) takes


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
        return self.number(name, default, unit="a number of seconds", low=low, above_low=above_low)

    def rate(self, name: str, default: float) -> float:
        """Requests per second, at least 0 (0: no limit)."""
        return self.number(name, default, unit="a number of requests per second (0: no limit)")

    def number(self, name: str, default: float, *, unit: str, low: float = 0.0, above_low: bool = False) -> float:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (above_low and value == low):
            bound = f"greater than {low:g}" if above_low else f"at least {low:g}"
            raise SettingError(f"{name} must be {unit} {bound}, got {raw!r}")
        return value

    def named(self, name: str, default: str, form: Form) -> str:
        """A name other systems take as it is (a NATS stream, a subject prefix, a PostgreSQL schema): refused
        here, at start-up, rather than by the first server that reads it."""
        raw = self._env.get(name) or default
        if not form.pattern.fullmatch(raw):
            raise SettingError(f"{name} must be {form.description}, got {raw!r}")
        return raw

    def key(self, name: str, sizes: tuple[int, ...] = AES_KEY_BYTES) -> str | None:
        """A secret key, base64 (strict: what the services decode it with) of one of `sizes` bytes; the error
        never shows it."""
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            size: int | None = len(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            size = None
        if size not in sizes:
            got = "a value that is not base64" if size is None else f"{size} bytes"
            raise SettingError(f"{name} must be the base64 of a key of {' or '.join(map(str, sizes))} bytes, "
                               f"got {got}")
        return raw

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
