"""Settings of the scheduler, read from the environment once and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kact_contracts.environment import (
    NATS_NAME,
    NATS_SCHEMES,
    NATS_SUBJECT_PREFIX,
    LOG_FORMAT,
    LOG_LEVEL,
    POSTGRES_SCHEMES,
    SCHEMA_NAME,
    Environment,
)
from notifier.settings import allow_private_webhooks


@dataclass(frozen=True)
class DatabaseAddress:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> DatabaseAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a PostgreSQL URL: {url!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        )


@dataclass(frozen=True)
class Settings:
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    data_dir: Path = Path(".kact")
    operator_token: str | None = None
    database_url: str | None = None
    db_schema: str = "kact"
    nats_url: str | None = None
    nats_stream: str = "KACT_EVENTS"
    nats_prefix: str = "kact"  # subjects: <prefix>.course.<course id>.<event>.v<n>
    cipher_key: str | None = None
    db_pool_size: int = 10
    simulated_time: bool = False  # tests and benchmarks only: honour the X-Kact-Now header
    workers: int = 1
    deadline_check_seconds: float = 5.0  # the deadline watcher looks again at least this often; 0: never runs
    # Contend for the background jobs (course index, relay, deadline watcher) in this process; `kact up` runs
    # them in a process of their own instead (`python -m scheduler.jobs`).
    background_jobs: bool = True
    webhook_allow_private: bool = False  # webhooks may be registered for loopback or private addresses
    max_body_bytes: int = 1024 * 1024  # larger request bodies are refused (413) before they are read whole
    idempotency_ttl_seconds: int = 24 * 3600  # how long an Idempotency-Key is remembered
    # /health/delivery fails once the oldest event not yet relayed waited this long, or the notifier was silent
    relay_max_lag: float = 60.0
    notifier_max_silence: float = 60.0
    # Requests per second sustained and at once per API key (a token bucket per principal); 0: no limits.
    # Shared equally by the worker processes.
    # 20/s is several times what one clinic's integration needs, and low enough that a key flooding at its limit
    # leaves other clinics their latency on a 2-core server (bench/noisy_neighbour.py).
    rate_limit: float = 20.0
    rate_burst: int = 60
    operator_rate_limit: float = 100.0
    operator_rate_burst: int = 500
    log_format: str = "auto"  # json | console | auto (console when stderr is a terminal)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in the environment; a value out of bounds raises `SettingError` naming its variable."""
        raw = os.environ if environ is None else environ
        env = Environment(raw)
        return cls(
            http_host=raw.get("KACT_HTTP_HOST", cls.http_host),  # "" listens on every address
            # 0: any free port (the announcement says which).
            http_port=env.integer("KACT_HTTP_PORT", cls.http_port, low=0, high=65535),
            data_dir=Path(env.text("KACT_DATA_DIR", str(cls.data_dir))),
            operator_token=env.optional("KACT_OPERATOR_TOKEN"),
            database_url=env.url("KACT_DATABASE_URL", POSTGRES_SCHEMES),
            db_schema=env.named("KACT_DB_SCHEMA", cls.db_schema, SCHEMA_NAME),
            nats_url=env.url("KACT_NATS_URL", NATS_SCHEMES),
            nats_stream=env.named("KACT_NATS_STREAM", cls.nats_stream, NATS_NAME),
            nats_prefix=env.named("KACT_NATS_PREFIX", cls.nats_prefix, NATS_SUBJECT_PREFIX),
            cipher_key=env.key("KACT_CIPHER_KEY"),
            db_pool_size=env.integer("KACT_DB_POOL_SIZE", cls.db_pool_size, low=1),
            simulated_time=env.flag("KACT_SIMULATED_TIME", cls.simulated_time),
            workers=env.integer("KACT_WORKERS", cls.workers, low=1),
            deadline_check_seconds=env.seconds("KACT_DEADLINE_CHECK_SECONDS", cls.deadline_check_seconds),
            background_jobs=env.flag("KACT_BACKGROUND_JOBS", cls.background_jobs),
            webhook_allow_private=allow_private_webhooks(env),
            max_body_bytes=env.integer("KACT_MAX_BODY_BYTES", cls.max_body_bytes, low=1024, high=64 * 1024 * 1024),
            idempotency_ttl_seconds=env.integer("KACT_IDEMPOTENCY_TTL", cls.idempotency_ttl_seconds, low=60,
                                                high=30 * 24 * 3600),
            relay_max_lag=env.seconds("KACT_RELAY_MAX_LAG", cls.relay_max_lag, above_low=True),
            notifier_max_silence=env.seconds("KACT_NOTIFIER_MAX_SILENCE", cls.notifier_max_silence, above_low=True),
            rate_limit=env.rate("KACT_RATE_LIMIT", cls.rate_limit),
            rate_burst=env.integer("KACT_RATE_BURST", cls.rate_burst, low=1),
            operator_rate_limit=env.rate("KACT_OPERATOR_RATE_LIMIT", cls.operator_rate_limit),
            operator_rate_burst=env.integer("KACT_OPERATOR_RATE_BURST", cls.operator_rate_burst, low=1),
            log_format=env.named("KACT_LOG_FORMAT", cls.log_format, LOG_FORMAT),
            log_level=env.named("KACT_LOG_LEVEL", cls.log_level, LOG_LEVEL).upper(),
        )

    def as_env(self) -> dict[str, str]:
        """These settings as the environment `from_env` reads (to hand them to worker processes)."""
        values = {
            "KACT_HTTP_HOST": self.http_host,
            "KACT_HTTP_PORT": str(self.http_port),
            "KACT_DATA_DIR": str(self.data_dir),
            "KACT_OPERATOR_TOKEN": self.operator_token,
            "KACT_DATABASE_URL": self.database_url,
            "KACT_DB_SCHEMA": self.db_schema,
            "KACT_NATS_URL": self.nats_url,
            "KACT_NATS_STREAM": self.nats_stream,
            "KACT_NATS_PREFIX": self.nats_prefix,
            "KACT_CIPHER_KEY": self.cipher_key,
            "KACT_DB_POOL_SIZE": str(self.db_pool_size),
            "KACT_SIMULATED_TIME": "1" if self.simulated_time else "0",
            "KACT_WORKERS": str(self.workers),
            "KACT_DEADLINE_CHECK_SECONDS": str(self.deadline_check_seconds),
            "KACT_BACKGROUND_JOBS": "1" if self.background_jobs else "0",
            "KACT_WEBHOOK_ALLOW_PRIVATE": "1" if self.webhook_allow_private else "0",
            "KACT_MAX_BODY_BYTES": str(self.max_body_bytes),
            "KACT_IDEMPOTENCY_TTL": str(self.idempotency_ttl_seconds),
            "KACT_RELAY_MAX_LAG": str(self.relay_max_lag),
            "KACT_NOTIFIER_MAX_SILENCE": str(self.notifier_max_silence),
            "KACT_RATE_LIMIT": str(self.rate_limit),
            "KACT_RATE_BURST": str(self.rate_burst),
            "KACT_OPERATOR_RATE_LIMIT": str(self.operator_rate_limit),
            "KACT_OPERATOR_RATE_BURST": str(self.operator_rate_burst),
            "KACT_LOG_FORMAT": self.log_format,
            "KACT_LOG_LEVEL": self.log_level,
        }
        return {k: v for k, v in values.items() if v is not None}
