"""The notifier's settings, read from the same KACT_* environment as the scheduler's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from kact_contracts.bus import ConsumerSettings, StreamSettings

from notifier.flows import Policy


def allow_private_webhooks(env: Mapping[str, str]) -> bool:
    """KACT_WEBHOOK_ALLOW_PRIVATE: whether webhooks may go to loopback, private or link-local addresses."""
    return env.get("KACT_WEBHOOK_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    return float(env.get(name, default))


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierSettings:
        env = os.environ if environ is None else environ
        if not env.get("KACT_DATABASE_URL") or not env.get("KACT_NATS_URL"):
            raise SystemExit("the notifier needs KACT_DATABASE_URL and KACT_NATS_URL")
        return cls(
            database_url=env["KACT_DATABASE_URL"],
            nats_url=env["KACT_NATS_URL"],
            db_schema=env.get("KACT_DB_SCHEMA", "kact"),
            cipher_key=env.get("KACT_CIPHER_KEY") or None,
            stream=StreamSettings(
                name=env.get("KACT_NATS_STREAM", StreamSettings.name),
                prefix=env.get("KACT_NATS_PREFIX", StreamSettings.prefix),
            ),
            consumer=ConsumerSettings(durable_name=env.get("KACT_NATS_CONSUMER", ConsumerSettings.durable_name)),
            policy=Policy(
                remind_after=timedelta(seconds=_seconds(env, "KACT_APPROVAL_REMIND_AFTER", 3600)),
                escalate_after=timedelta(seconds=_seconds(env, "KACT_APPROVAL_ESCALATE_AFTER", 4 * 3600)),
                warn_before_window_closes=timedelta(seconds=_seconds(env, "KACT_WINDOW_WARNING_BEFORE", 24 * 3600)),
            ),
            webhook_timeout=_seconds(env, "KACT_WEBHOOK_TIMEOUT", 5.0),
            webhook_max_attempts=int(env.get("KACT_WEBHOOK_MAX_ATTEMPTS", 8)),
            webhook_base_delay=_seconds(env, "KACT_WEBHOOK_BASE_DELAY", 1.0),
            webhook_max_delay=_seconds(env, "KACT_WEBHOOK_MAX_DELAY", 300.0),
            webhook_allow_private=allow_private_webhooks(env),
        )
