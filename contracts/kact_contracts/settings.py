"""Every KACT_* setting of kact, declared once: its variable, type, default, bounds and meaning.

Both services (the scheduler's API and jobs, the notifier) and `kact up` read their settings through `read`,
which parses each variable once and reports every bad one, one line each. The README's settings table and
`kact up --help` are generated from `CATALOGUE` (`python -m kact_contracts.settings` rewrites the table; a
test fails when they drift)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kact_contracts.environment import (
    LOG_FORMAT,
    LOG_LEVEL,
    NATS_NAME,
    NATS_SCHEMES,
    NATS_SUBJECT_PREFIX,
    POSTGRES_SCHEMES,
    SCHEMA_NAME,
    Environment,
    Form,
    SettingError,
)

Parse = Callable[[Environment, str, Any], Any]


@dataclass(frozen=True)
class Setting:
    """One KACT_* variable: how it is parsed, its default (None: unset), and what it means."""

    variable: str
    default: Any
    parse: Parse
    meaning: str
    shown: str | None = None  # the default as the README shows it, when not the value itself

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        if isinstance(self.default, bool):
            return "`1`" if self.default else "off"
        if isinstance(self.default, float) and self.default.is_integer():
            return f"`{int(self.default)}`"
        return f"`{self.default}`"

    def as_text(self, value: Any) -> str | None:
        """`value` as this variable's text (what `read` parses back to it); None stays unset."""
        if value is None:
            return None
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)


def _text(env: Environment, name: str, default: Any) -> Any:
    return env.text(name, default)


def _optional(env: Environment, name: str, default: Any) -> Any:
    return env.optional(name)


def _path(env: Environment, name: str, default: Any) -> Any:
    return Path(env.text(name, str(default)))


def _integer(low: int, high: int | None = None) -> Parse:
    return lambda env, name, default: env.integer(name, default, low=low, high=high)


def _port_or_off(env: Environment, name: str, default: Any) -> Any:
    """A port (0: any free one), or None when unset or blank: off."""
    return None if not (env.optional(name) or "").strip() else env.integer(name, 0, low=0, high=65535)


def _seconds(*, above_zero: bool = False) -> Parse:
    return lambda env, name, default: env.seconds(name, default, above_low=above_zero)


def _rate(env: Environment, name: str, default: Any) -> Any:
    return env.rate(name, default)


def _flag(env: Environment, name: str, default: Any) -> Any:
    return env.flag(name, default)


def _named(form: Form) -> Parse:
    return lambda env, name, default: env.named(name, default, form)


def _format(env: Environment, name: str, default: Any) -> Any:
    return env.named(name, default, LOG_FORMAT).lower()


def _level(env: Environment, name: str, default: Any) -> Any:
    return env.named(name, default, LOG_LEVEL).upper()


def _url(schemes: tuple[str, ...]) -> Parse:
    return lambda env, name, default: env.url(name, schemes)


def _key(env: Environment, name: str, default: Any) -> Any:
    return env.key(name)


def _hmac_key(env: Environment, name: str, default: Any) -> Any:
    return env.key(name, sizes=(32, 64))


# In the README's order: where the API runs, its servers and secrets, its limits, then delivery.
CATALOGUE: tuple[Setting, ...] = (
    Setting("KACT_HTTP_HOST", "127.0.0.1", _text, "address the API listens on (`0.0.0.0`: every IPv4 address)"),
    Setting("KACT_HTTP_PORT", 8000, _integer(0, 65535),
            "port the API listens on (0 to 65535; `0`: any free port, printed at start; `kact up --port`)"),
    Setting("KACT_DATA_DIR", Path(".kact"), _path,
            "embedded PostgreSQL and NATS data, generated keys, logs (0700 dir, 0710 as root; 0600 files; "
            "`kact up --data-dir`)", shown="`./.kact`"),
    Setting("KACT_OPERATOR_TOKEN", None, _optional, "the operator's API key",
            shown="generated once into the data dir"),
    Setting("KACT_DATABASE_URL", None, _url(POSTGRES_SCHEMES),
            "use this PostgreSQL (`postgresql://user:pw@host:port/db`); start none", shown="embedded server"),
    Setting("KACT_DB_SCHEMA", "kact", _named(SCHEMA_NAME),
            "PostgreSQL schema for all tables (a lower-case identifier, at most 63 characters, not `pg_…`)"),
    Setting("KACT_DB_POOL_SIZE", 10, _integer(1), "connections per pool (at least 1)"),
    Setting("KACT_DB_MIGRATE", True, _flag,
            "`0`: this process neither creates nor migrates the schema (its owner did: `kact up`, `kact db "
            "grant`), so it may connect as the [append-only role](#append-only-database-role), which changes no "
            "table's definition (`kact up` sets it for the processes it starts)"),
    Setting("KACT_NATS_URL", None, _url(NATS_SCHEMES), "use this NATS JetStream (`nats://host:port`); start none",
            shown="embedded server"),
    Setting("KACT_CIPHER_KEY", None, _key,
            "AES-GCM key (base64 of 16, 24 or 32 bytes; generated: 32) that encrypts stored events; losing it "
            "loses the data", shown="generated once into the data dir"),
    Setting("KACT_AUDIT_KEY", None, _hmac_key,
            "HMAC-SHA256 key (base64 of 32 or 64 bytes) that signs the event chain's heads (see [Tamper "
            "evidence](#tamper-evidence)); kept out of the database. The jobs process and `kact audit verify` need "
            "it", shown="generated once into the data dir"),
    Setting("KACT_AUDIT_SIGN_SECONDS", 60.0, _seconds(above_zero=True),
            "seconds (more than 0) between two signed heads of the event chain; the jobs process also signs one "
            "when it stops"),
    Setting("KACT_WORKERS", 1, _integer(1),
            "API worker processes, at least 1 (`2` uses both cores of a small machine)"),
    Setting("KACT_RATE_LIMIT", 20.0, _rate,
            "requests per second sustained per API key (clinic or prescriber); `0` turns rate limits off"),
    Setting("KACT_RATE_BURST", 60, _integer(1), "requests per API key at once (the token bucket's size)"),
    Setting("KACT_OPERATOR_RATE_LIMIT", 100.0, _rate, "requests per second sustained with the operator key"),
    Setting("KACT_OPERATOR_RATE_BURST", 500, _integer(1), "requests at once with the operator key"),
    Setting("KACT_BACKGROUND_JOBS", True, _flag,
            "`0`: this API process leaves the course index, the relay and the deadline watcher to others (`kact "
            "up` sets it for its API and runs them in `python -m scheduler.jobs`)"),
    Setting("KACT_SIMULATED_TIME", False, _flag,
            "tests, walkthrough and benchmarks only: honour `X-Kact-Now`"),
    Setting("KACT_DEADLINE_CHECK_SECONDS", 5.0, _seconds(),
            "the deadline watcher (one process at a time) records a missed integration window once its deadline "
            "passed by the server's clock (also under simulated time), looking again at least this often; `0` "
            "turns it off"),
    Setting("KACT_NATS_STREAM", "KACT_EVENTS", _named(NATS_NAME),
            "JetStream stream of the course events (file storage, 10 min duplicate window; letters, digits, `_` "
            "and `-`, at most 32)"),
    Setting("KACT_NATS_PREFIX", "kact", _named(NATS_SUBJECT_PREFIX),
            "subject prefix: `<prefix>.course.<course id>.<event>.v<n>` (dot-separated tokens of letters, "
            "digits, `_` and `-`)"),
    Setting("KACT_NATS_CONSUMER", "notifier", _named(NATS_NAME),
            "the notifier's durable consumer (as a stream name)"),
    Setting("KACT_RELAY_MAX_LAG", 60.0, _seconds(above_zero=True),
            "seconds (more than 0) the oldest event not yet relayed may wait before `/health/delivery` answers "
            "503"),
    Setting("KACT_NOTIFIER_MAX_SILENCE", 60.0, _seconds(above_zero=True),
            "seconds (more than 0) since the notifier's last heartbeat before `/health/delivery` answers 503"),
    Setting("KACT_APPROVAL_REMIND_AFTER", 3600.0, _seconds(above_zero=True),
            "seconds after a dose approval request before the prescriber is reminded (more than 0, as are the "
            "next two)"),
    Setting("KACT_APPROVAL_ESCALATE_AFTER", 14400.0, _seconds(above_zero=True),
            "seconds after the request before the home clinic is alerted"),
    Setting("KACT_WINDOW_WARNING_BEFORE", 86400.0, _seconds(above_zero=True),
            "seconds before an integration window closes that the home clinic is warned"),
    Setting("KACT_WEBHOOK_TIMEOUT", 5.0, _seconds(above_zero=True),
            "seconds one webhook attempt may take (connect to last byte; more than 0)"),
    Setting("KACT_WEBHOOK_MAX_ATTEMPTS", 8, _integer(1),
            "attempts before a delivery is marked failed (then redrive it); at least 1"),
    Setting("KACT_WEBHOOK_BASE_DELAY", 1.0, _seconds(),
            "seconds: the wait after attempt *n* is uniform in [0, min(max, base × 2^(n-1))]"),
    Setting("KACT_WEBHOOK_MAX_DELAY", 300.0, _seconds(),
            "seconds: the cap on that wait (not less than the base delay)"),
    Setting("KACT_MAX_BODY_BYTES", 1024 * 1024, _integer(1024, 64 * 1024 * 1024),
            "request bodies larger than this are refused (`413`) before they are read whole (1024 to 67108864)"),
    Setting("KACT_IDEMPOTENCY_TTL", 24 * 3600, _integer(60, 30 * 24 * 3600),
            "seconds an `Idempotency-Key` is remembered, 60 to 2592000 (expired keys are purged every 10 "
            "minutes)"),
    Setting("KACT_WEBHOOK_ALLOW_PRIVATE", False, _flag,
            "`1`: webhooks may go to loopback, private or link-local addresses (a receiver on your own machine "
            "while developing). Off, such a URL is refused at registration, and a host name resolving to one is "
            "refused at every delivery: the host is resolved once per connection, every address checked, and the "
            "connection made to exactly those addresses (TLS and `Host` still use the name), so a name that "
            "answers differently to a second lookup (DNS rebinding) gains nothing"),
    Setting("KACT_METRICS_PUBLIC", False, _flag,
            "`1`: `GET /metrics` answers without the operator key (it shows request, command and delivery counts, "
            "never ids)"),
    Setting("KACT_JOBS_METRICS_PORT", None, _port_or_off,
            "the jobs process serves its metrics on 127.0.0.1 at this port (`0`: any free port, logged); unset: no "
            "metrics server", shown="unset (`kact up`: a free port)"),
    Setting("KACT_NOTIFIER_METRICS_PORT", None, _port_or_off, "the same for the notifier",
            shown="unset (`kact up`: a free port)"),
    Setting("KACT_LOG_FORMAT", "auto", _format,
            "`json`, `console` or `auto` (the console format when stderr is a terminal, JSON otherwise); see "
            "[Logs](#logs)"),
    Setting("KACT_LOG_LEVEL", "INFO", _level, "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (any case)"),
)
SETTINGS: Mapping[str, Setting] = {setting.variable: setting for setting in CATALOGUE}


def default(variable: str) -> Any:
    return SETTINGS[variable].default


def read(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting's value, by variable, from `environ` (the process environment by default).

    Raises `SettingError` listing every bad value, one line each, naming its variable; a value is never echoed
    where it may be a secret."""
    env = Environment(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    errors: list[str] = []
    for setting in CATALOGUE:
        try:
            values[setting.variable] = setting.parse(env, setting.variable, setting.default)
        except SettingError as error:
            errors.append(str(error))
    base, cap = values.get("KACT_WEBHOOK_BASE_DELAY"), values.get("KACT_WEBHOOK_MAX_DELAY")
    if base is not None and cap is not None and cap < base:
        errors.append(f"KACT_WEBHOOK_MAX_DELAY ({cap:g}) must not be less than KACT_WEBHOOK_BASE_DELAY ({base:g})")
    if errors:
        raise SettingError("\n".join(errors))
    return values


def as_env(values: Mapping[str, Any]) -> dict[str, str]:
    """`values` (by variable) as the environment `read` takes back; unset ones are left out."""
    texts = {variable: SETTINGS[variable].as_text(value) for variable, value in values.items()}
    return {variable: text for variable, text in texts.items() if text is not None}


def markdown_table() -> str:
    rows = [f"| `{s.variable}` | {s.shown_default} | {s.meaning} |" for s in CATALOGUE]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


def help_text(width: int = 100) -> str:
    """The settings for `kact up --help`: each variable, its default and meaning (markdown marks removed)."""
    import textwrap

    lines = ["settings (environment variables; unset or empty means the default):"]
    for s in CATALOGUE:
        plain = _plain(f"{s.variable} (default {s.shown_default}): {s.meaning}")
        lines.extend(textwrap.wrap(plain, width, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def _plain(text: str) -> str:
    return re.sub(r"[`*]", "", text)


TABLE_START = "<!-- settings table: generated by `python -m kact_contracts.settings` -->"
TABLE_END = "<!-- end of settings table -->"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the table markers replaced by the current table."""
    start, end = readme.index(TABLE_START) + len(TABLE_START), readme.index(TABLE_END)
    return f"{readme[:start]}\n{markdown_table()}\n{readme[end:]}"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "README.md"
    target.write_text(readme_with_table(target.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the settings table into {target}")
