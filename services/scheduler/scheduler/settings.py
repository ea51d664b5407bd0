"""Settings of the scheduler, read from the environment once and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kact_contracts import settings as catalogue
from kact_contracts.settings import default


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
    """The scheduler's settings; each default is its variable's in `kact_contracts.settings.CATALOGUE`."""

    http_host: str = default("KACT_HTTP_HOST")
    http_port: int = default("KACT_HTTP_PORT")
    data_dir: Path = default("KACT_DATA_DIR")
    operator_token: str | None = default("KACT_OPERATOR_TOKEN")
    database_url: str | None = default("KACT_DATABASE_URL")
    db_schema: str = default("KACT_DB_SCHEMA")
    nats_url: str | None = default("KACT_NATS_URL")
    nats_stream: str = default("KACT_NATS_STREAM")
    nats_prefix: str = default("KACT_NATS_PREFIX")
    cipher_key: str | None = default("KACT_CIPHER_KEY")
    audit_key: str | None = default("KACT_AUDIT_KEY")
    audit_sign_seconds: float = default("KACT_AUDIT_SIGN_SECONDS")
    db_pool_size: int = default("KACT_DB_POOL_SIZE")
    db_migrate: bool = default("KACT_DB_MIGRATE")
    simulated_time: bool = default("KACT_SIMULATED_TIME")
    workers: int = default("KACT_WORKERS")
    deadline_check_seconds: float = default("KACT_DEADLINE_CHECK_SECONDS")
    background_jobs: bool = default("KACT_BACKGROUND_JOBS")
    webhook_allow_private: bool = default("KACT_WEBHOOK_ALLOW_PRIVATE")
    max_body_bytes: int = default("KACT_MAX_BODY_BYTES")
    idempotency_ttl_seconds: int = default("KACT_IDEMPOTENCY_TTL")
    relay_max_lag: float = default("KACT_RELAY_MAX_LAG")
    notifier_max_silence: float = default("KACT_NOTIFIER_MAX_SILENCE")
    # Shared equally by the worker processes.
    # 20/s is several times what one clinic's integration needs, and low enough that a key flooding at its limit
    # leaves other clinics their latency on a 2-core server (bench/noisy_neighbour.py).
    rate_limit: float = default("KACT_RATE_LIMIT")
    rate_burst: int = default("KACT_RATE_BURST")
    operator_rate_limit: float = default("KACT_OPERATOR_RATE_LIMIT")
    operator_rate_burst: int = default("KACT_OPERATOR_RATE_BURST")
    metrics_public: bool = default("KACT_METRICS_PUBLIC")
    jobs_metrics_port: int | None = default("KACT_JOBS_METRICS_PORT")
    log_format: str = default("KACT_LOG_FORMAT")
    log_level: str = default("KACT_LOG_LEVEL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in the environment; bad values raise `SettingError` naming each variable."""
        return cls.from_values(catalogue.read(environ))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Settings:
        """The scheduler's part of every setting's value (`kact_contracts.settings.read`)."""
        return cls(**{name: values[variable] for name, variable in VARIABLES.items()})

    def as_env(self) -> dict[str, str]:
        """These settings as the environment `from_env` reads (to hand them to worker processes)."""
        return catalogue.as_env({variable: getattr(self, name) for name, variable in VARIABLES.items()})


# Each field's variable in `kact_contracts.settings.CATALOGUE`, which parses it and holds its default.
VARIABLES: dict[str, str] = {
    "http_host": "KACT_HTTP_HOST",
    "http_port": "KACT_HTTP_PORT",
    "data_dir": "KACT_DATA_DIR",
    "operator_token": "KACT_OPERATOR_TOKEN",
    "database_url": "KACT_DATABASE_URL",
    "db_schema": "KACT_DB_SCHEMA",
    "nats_url": "KACT_NATS_URL",
    "nats_stream": "KACT_NATS_STREAM",
    "nats_prefix": "KACT_NATS_PREFIX",
    "cipher_key": "KACT_CIPHER_KEY",
    "audit_key": "KACT_AUDIT_KEY",
    "audit_sign_seconds": "KACT_AUDIT_SIGN_SECONDS",
    "db_pool_size": "KACT_DB_POOL_SIZE",
    "db_migrate": "KACT_DB_MIGRATE",
    "simulated_time": "KACT_SIMULATED_TIME",
    "workers": "KACT_WORKERS",
    "deadline_check_seconds": "KACT_DEADLINE_CHECK_SECONDS",
    "background_jobs": "KACT_BACKGROUND_JOBS",
    "webhook_allow_private": "KACT_WEBHOOK_ALLOW_PRIVATE",
    "max_body_bytes": "KACT_MAX_BODY_BYTES",
    "idempotency_ttl_seconds": "KACT_IDEMPOTENCY_TTL",
    "relay_max_lag": "KACT_RELAY_MAX_LAG",
    "notifier_max_silence": "KACT_NOTIFIER_MAX_SILENCE",
    "rate_limit": "KACT_RATE_LIMIT",
    "rate_burst": "KACT_RATE_BURST",
    "operator_rate_limit": "KACT_OPERATOR_RATE_LIMIT",
    "operator_rate_burst": "KACT_OPERATOR_RATE_BURST",
    "metrics_public": "KACT_METRICS_PUBLIC",
    "jobs_metrics_port": "KACT_JOBS_METRICS_PORT",
    "log_format": "KACT_LOG_FORMAT",
    "log_level": "KACT_LOG_LEVEL",
}
