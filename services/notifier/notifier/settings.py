"""The notifier's settings, read from the same KACT_* environment as the scheduler's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kact_contracts import settings as catalogue
from kact_contracts.bus import ConsumerSettings, StreamSettings
from kact_contracts.environment import SettingError
from kact_contracts.settings import default

from notifier.flows import Policy


@dataclass(frozen=True)
class NotifierSettings:
    """The notifier's settings; each default is its variable's in `kact_contracts.settings.CATALOGUE`."""

    database_url: str
    nats_url: str
    db_schema: str = default("KACT_DB_SCHEMA")
    db_migrate: bool = default("KACT_DB_MIGRATE")  # off: the schema's owner migrated it (append-only role)
    cipher_key: str | None = None  # encrypts webhook signing secrets at rest
    stream: StreamSettings = field(default_factory=StreamSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    policy: Policy = field(default_factory=Policy)
    webhook_timeout: float = default("KACT_WEBHOOK_TIMEOUT")
    webhook_max_attempts: int = default("KACT_WEBHOOK_MAX_ATTEMPTS")
    webhook_base_delay: float = default("KACT_WEBHOOK_BASE_DELAY")
    webhook_max_delay: float = default("KACT_WEBHOOK_MAX_DELAY")
    webhook_allow_private: bool = default("KACT_WEBHOOK_ALLOW_PRIVATE")
    metrics_port: int | None = default("KACT_NOTIFIER_METRICS_PORT")  # 127.0.0.1:<port>, 0: a free one
    log_format: str = default("KACT_LOG_FORMAT")
    log_level: str = default("KACT_LOG_LEVEL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierSettings:
        """The settings in the environment; a missing server URL or bad values raise `SettingError`."""
        return cls.from_values(catalogue.read(environ))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NotifierSettings:
        """The notifier's part of every setting's value (`kact_contracts.settings.read`)."""
        database_url, nats_url = values["KACT_DATABASE_URL"], values["KACT_NATS_URL"]
        if database_url is None or nats_url is None:
            raise SettingError("the notifier needs KACT_DATABASE_URL and KACT_NATS_URL")
        return cls(
            database_url=database_url,
            nats_url=nats_url,
            db_schema=values["KACT_DB_SCHEMA"],
            db_migrate=values["KACT_DB_MIGRATE"],
            cipher_key=values["KACT_CIPHER_KEY"],
            stream=StreamSettings(name=values["KACT_NATS_STREAM"], prefix=values["KACT_NATS_PREFIX"]),
            consumer=ConsumerSettings(durable_name=values["KACT_NATS_CONSUMER"]),
            policy=Policy(
                remind_after=timedelta(seconds=values["KACT_APPROVAL_REMIND_AFTER"]),
                escalate_after=timedelta(seconds=values["KACT_APPROVAL_ESCALATE_AFTER"]),
                warn_before_window_closes=timedelta(seconds=values["KACT_WINDOW_WARNING_BEFORE"]),
            ),
            webhook_timeout=values["KACT_WEBHOOK_TIMEOUT"],
            webhook_max_attempts=values["KACT_WEBHOOK_MAX_ATTEMPTS"],
            webhook_base_delay=values["KACT_WEBHOOK_BASE_DELAY"],
            webhook_max_delay=values["KACT_WEBHOOK_MAX_DELAY"],
            webhook_allow_private=values["KACT_WEBHOOK_ALLOW_PRIVATE"],
            metrics_port=values["KACT_NOTIFIER_METRICS_PORT"],
            log_format=values["KACT_LOG_FORMAT"],
            log_level=values["KACT_LOG_LEVEL"],
        )
