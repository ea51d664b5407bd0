"""The notifier's settings, read from the same KACT_* environment as the scheduler's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kact_contracts.bus import ConsumerSettings, StreamSettings
from kact_contracts.environment import (
    NATS_NAME,
    NATS_SCHEMES,
    NATS_SUBJECT_PREFIX,
    LOG_FORMAT,
    LOG_LEVEL,
    POSTGRES_SCHEMES,
    SCHEMA_NAME,
    Environment,
    SettingError,
)

from notifier.flows import Policy


def allow_private_webhooks(env: Environment) -> bool:
    """KACT_WEBHOOK_ALLOW_PRIVATE: whether webhooks may go to loopback, private or link-local addresses."""
    return env.flag("KACT_WEBHOOK_ALLOW_PRIVATE", False)


@dataclass(frozen=True)
class NotifierSettings:
    database_url: str
    nats_url: str
    db_schema: str = "kact"
    cipher_key: str | None = None  # encrypts webhook signing secrets at rest
    stream: StreamSettings = field(default_factory=StreamSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    policy: Policy = field(default_factory=Policy)
    webhook_timeout: float = 5.0
    webhook_max_attempts: int = 8
    webhook_base_delay: float = 1.0
    webhook_max_delay: float = 300.0
    webhook_allow_private: bool = False  # webhooks to loopback, private or link-local addresses (development)
    log_format: str = "auto"  # json | console | auto (console when stderr is a terminal)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierSettings:
        """The settings in the environment; a missing server URL or a value out of bounds raises `SettingError`."""
        env = Environment(os.environ if environ is None else environ)
        database_url = env.url("KACT_DATABASE_URL", POSTGRES_SCHEMES)
        nats_url = env.url("KACT_NATS_URL", NATS_SCHEMES)
        if database_url is None or nats_url is None:
            raise SettingError("the notifier needs KACT_DATABASE_URL and KACT_NATS_URL")
        return cls(database_url=database_url, nats_url=nats_url, **cls._options(env))

    @classmethod
    def check_env(cls, environ: Mapping[str, str]) -> None:
        """Raise `SettingError` for a bad notifier setting other than the server URLs, so that `kact up` (which
        resolves those itself) refuses to start instead of restarting a notifier that cannot."""
        cls._options(Environment(environ))

    @classmethod
    def _options(cls, env: Environment) -> dict[str, Any]:
        base_delay = env.seconds("KACT_WEBHOOK_BASE_DELAY", cls.webhook_base_delay)
        max_delay = env.seconds("KACT_WEBHOOK_MAX_DELAY", cls.webhook_max_delay)
        if max_delay < base_delay:
            raise SettingError(
                f"KACT_WEBHOOK_MAX_DELAY ({max_delay:g}) must not be less than KACT_WEBHOOK_BASE_DELAY ({base_delay:g})"
            )
        return {
            "db_schema": env.named("KACT_DB_SCHEMA", cls.db_schema, SCHEMA_NAME),
            "cipher_key": env.key("KACT_CIPHER_KEY"),
            "stream": StreamSettings(
                name=env.named("KACT_NATS_STREAM", StreamSettings.name, NATS_NAME),
                prefix=env.named("KACT_NATS_PREFIX", StreamSettings.prefix, NATS_SUBJECT_PREFIX),
            ),
            "consumer": ConsumerSettings(
                durable_name=env.named("KACT_NATS_CONSUMER", ConsumerSettings.durable_name, NATS_NAME)),
            "policy": Policy(
                remind_after=_duration(env, "KACT_APPROVAL_REMIND_AFTER", Policy.remind_after),
                escalate_after=_duration(env, "KACT_APPROVAL_ESCALATE_AFTER", Policy.escalate_after),
                warn_before_window_closes=_duration(
                    env, "KACT_WINDOW_WARNING_BEFORE", Policy.warn_before_window_closes
                ),
            ),
            "webhook_timeout": env.seconds("KACT_WEBHOOK_TIMEOUT", cls.webhook_timeout, above_low=True),
            "webhook_max_attempts": env.integer("KACT_WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts, low=1),
            "webhook_base_delay": base_delay,
            "webhook_max_delay": max_delay,
            "webhook_allow_private": allow_private_webhooks(env),
            "log_format": env.named("KACT_LOG_FORMAT", cls.log_format, LOG_FORMAT),
            "log_level": env.named("KACT_LOG_LEVEL", cls.log_level, LOG_LEVEL).upper(),
        }


def _duration(env: Environment, name: str, default: timedelta) -> timedelta:
    return timedelta(seconds=env.seconds(name, default.total_seconds(), above_low=True))
