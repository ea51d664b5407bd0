"""Settings from the environment: every bad value is refused with one error naming its variable."""

from __future__ import annotations

import base64

import pytest
from eventsourcing.cryptography import AESCipher
from kact_contracts.environment import SettingError
from notifier.settings import NotifierSettings

from scheduler.settings import Settings

SERVERS = {"KACT_DATABASE_URL": "postgresql://kact:pw@db:5432/kact", "KACT_NATS_URL": "nats://bus:4222"}
# Read by the scheduler and the notifier alike.
BAD_SHARED = [
    ("KACT_CIPHER_KEY", "not base64!"), ("KACT_CIPHER_KEY", base64.b64encode(b"ten bytes!").decode()),
    ("KACT_CIPHER_KEY", base64.b64encode(bytes(33)).decode()),
    ("KACT_NATS_STREAM", "KACT.EVENTS"), ("KACT_NATS_STREAM", "KACT EVENTS"), ("KACT_NATS_STREAM", "KACT/EVENTS"),
    ("KACT_NATS_STREAM", "K" * 33), ("KACT_NATS_STREAM", "events>"),
    ("KACT_NATS_PREFIX", "kact.*"), ("KACT_NATS_PREFIX", "kact.>"), ("KACT_NATS_PREFIX", "kact..eu"),
    ("KACT_NATS_PREFIX", ".kact"), ("KACT_NATS_PREFIX", "kact."), ("KACT_NATS_PREFIX", "ka ct"),
    ("KACT_NATS_PREFIX", "k" * 65),
    ("KACT_DB_SCHEMA", "Kact"), ("KACT_DB_SCHEMA", "kact; drop table x"), ("KACT_DB_SCHEMA", "1kact"),
    ("KACT_DB_SCHEMA", "k" * 64), ("KACT_DB_SCHEMA", "pg_kact"), ("KACT_DB_SCHEMA", "ka-ct"),
]


def test_the_settings_round_trip_through_the_environment_they_hand_to_workers() -> None:
    settings = Settings.from_env({**SERVERS, "KACT_HTTP_PORT": "0", "KACT_SIMULATED_TIME": "yes",
                                  "KACT_DEADLINE_CHECK_SECONDS": "0.5", "KACT_BACKGROUND_JOBS": "off",
                                  "KACT_METRICS_PUBLIC": "1", "KACT_JOBS_METRICS_PORT": "9464"})
    assert (settings.http_port, settings.simulated_time, settings.deadline_check_seconds,
            settings.background_jobs, settings.metrics_public, settings.jobs_metrics_port) == (0, True, 0.5, False,
                                                                                                True, 9464)
    assert Settings.from_env(settings.as_env()) == settings
    assert Settings.from_env(Settings().as_env()).jobs_metrics_port is None  # unset: no metrics server
    assert Settings.from_env({}) == Settings()  # unset: the defaults


@pytest.mark.parametrize(("variable", "value"), [
    ("KACT_HTTP_PORT", "80OO"), ("KACT_HTTP_PORT", "65536"), ("KACT_HTTP_PORT", "-1"),
    ("KACT_DB_POOL_SIZE", "0"), ("KACT_WORKERS", "two"), ("KACT_DEADLINE_CHECK_SECONDS", "-1"),
    ("KACT_DEADLINE_CHECK_SECONDS", "inf"), ("KACT_SIMULATED_TIME", "ture"), ("KACT_BACKGROUND_JOBS", "2"),
    ("KACT_WEBHOOK_ALLOW_PRIVATE", "y"), ("KACT_DATABASE_URL", "mysql://db/kact"),
    ("KACT_DATABASE_URL", "postgresql://db:port/kact"), ("KACT_NATS_URL", "bus:4222"),
    *BAD_SHARED, ("KACT_METRICS_PUBLIC", "sure"), ("KACT_JOBS_METRICS_PORT", "-1"),
    ("KACT_JOBS_METRICS_PORT", "65536"), ("KACT_RELAY_MAX_LAG", "0"), ("KACT_NOTIFIER_MAX_SILENCE", "0"), ("KACT_RATE_LIMIT", "-1"),
    ("KACT_OPERATOR_RATE_LIMIT", "fast"),
])
def test_a_bad_scheduler_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingError, match=f"^{variable} must be .*, got "):
        Settings.from_env({variable: value})


def test_a_rate_is_requests_per_second_not_seconds() -> None:
    with pytest.raises(SettingError, match="^KACT_RATE_LIMIT must be a number of requests per second"):
        Settings.from_env({"KACT_RATE_LIMIT": "-1"})


@pytest.mark.parametrize("size", [16, 24, 32])
def test_a_cipher_key_of_a_size_aes_takes_is_taken(size: int) -> None:
    key = AESCipher.create_key(size)
    assert Settings.from_env({"KACT_CIPHER_KEY": key}).cipher_key == key
    assert NotifierSettings.from_env({**SERVERS, "KACT_CIPHER_KEY": key}).cipher_key == key


def test_a_bad_cipher_key_is_never_shown() -> None:
    secret = base64.b64encode(b"s3cret-but-short").decode()[:-1] + "!"
    with pytest.raises(SettingError) as error:
        Settings.from_env({"KACT_CIPHER_KEY": secret})
    assert str(error.value) == "KACT_CIPHER_KEY must be the base64 of a key of 16 or 24 or 32 bytes, got a value " \
                               "that is not base64"
    assert secret not in str(error.value)


def test_the_names_the_tests_and_benchmarks_use_are_valid() -> None:
    settings = Settings.from_env({"KACT_NATS_STREAM": "T_1a2b3c4d", "KACT_NATS_PREFIX": "t1a2b3c4d",
                                  "KACT_DB_SCHEMA": "t_own_0123456789"})
    assert (settings.nats_stream, settings.nats_prefix, settings.db_schema) == ("T_1a2b3c4d", "t1a2b3c4d",
                                                                              "t_own_0123456789")
    assert Settings.from_env({"KACT_NATS_PREFIX": "acme.kact-eu"}).nats_prefix == "acme.kact-eu"


@pytest.mark.parametrize(("variable", "value"), [
    ("KACT_APPROVAL_REMIND_AFTER", "0"), ("KACT_APPROVAL_ESCALATE_AFTER", "1h"),
    ("KACT_WINDOW_WARNING_BEFORE", "nan"), ("KACT_WEBHOOK_TIMEOUT", "0"), ("KACT_WEBHOOK_MAX_ATTEMPTS", "0"),
    ("KACT_WEBHOOK_BASE_DELAY", "-1"), ("KACT_WEBHOOK_MAX_DELAY", "x"), ("KACT_WEBHOOK_ALLOW_PRIVATE", "maybe"),
    *BAD_SHARED, ("KACT_NATS_CONSUMER", "notifier.1"), ("KACT_NATS_CONSUMER", "no*tifier"),
    ("KACT_NATS_CONSUMER", "n" * 33), ("KACT_NOTIFIER_METRICS_PORT", "port"), ("KACT_NOTIFIER_METRICS_PORT", "-1"),
])
def test_a_bad_notifier_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingError, match=f"^{variable} must be .*, got "):
        NotifierSettings.check_env({variable: value})
    with pytest.raises(SettingError, match=f"^{variable} must be "):
        NotifierSettings.from_env({**SERVERS, variable: value})


def test_the_notifier_settings_hold_together() -> None:
    with pytest.raises(SettingError, match="KACT_WEBHOOK_MAX_DELAY .* less than KACT_WEBHOOK_BASE_DELAY"):
        NotifierSettings.check_env({"KACT_WEBHOOK_BASE_DELAY": "10", "KACT_WEBHOOK_MAX_DELAY": "5"})
    with pytest.raises(SettingError, match="needs KACT_DATABASE_URL and KACT_NATS_URL"):
        NotifierSettings.from_env({"KACT_NATS_URL": "nats://bus:4222"})
    settings = NotifierSettings.from_env({**SERVERS, "KACT_APPROVAL_REMIND_AFTER": "90"})
    assert settings.policy.remind_after.total_seconds() == 90
    assert settings.metrics_port is None  # unset: no metrics server
    assert NotifierSettings.from_env({**SERVERS, "KACT_NOTIFIER_METRICS_PORT": "0"}).metrics_port == 0


def test_a_database_password_never_appears_in_the_error() -> None:
    with pytest.raises(SettingError) as error:
        Settings.from_env({"KACT_DATABASE_URL": "mysql://kact:s3cret@db/kact"})
    assert "s3cret" not in str(error.value)
