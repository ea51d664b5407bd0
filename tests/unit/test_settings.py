"""Settings from the environment: every bad value is refused with one error naming its variable."""

from __future__ import annotations

import pytest
from kact_contracts.environment import SettingError
from notifier.settings import NotifierSettings

from scheduler.settings import Settings

SERVERS = {"KACT_DATABASE_URL": "postgresql://kact:pw@db:5432/kact", "KACT_NATS_URL": "nats://bus:4222"}


def test_the_settings_round_trip_through_the_environment_they_hand_to_workers() -> None:
    settings = Settings.from_env({**SERVERS, "KACT_HTTP_PORT": "0", "KACT_SIMULATED_TIME": "yes",
                                  "KACT_DEADLINE_CHECK_SECONDS": "0.5", "KACT_BACKGROUND_JOBS": "off"})
    assert (settings.http_port, settings.simulated_time, settings.deadline_check_seconds,
            settings.background_jobs) == (0, True, 0.5, False)
    assert Settings.from_env(settings.as_env()) == settings
    assert Settings.from_env({}) == Settings()  # unset: the defaults


@pytest.mark.parametrize(("variable", "value"), [
    ("KACT_HTTP_PORT", "80OO"), ("KACT_HTTP_PORT", "65536"), ("KACT_HTTP_PORT", "-1"),
    ("KACT_DB_POOL_SIZE", "0"), ("KACT_WORKERS", "two"), ("KACT_DEADLINE_CHECK_SECONDS", "-1"),
    ("KACT_DEADLINE_CHECK_SECONDS", "inf"), ("KACT_SIMULATED_TIME", "ture"), ("KACT_BACKGROUND_JOBS", "2"),
    ("KACT_WEBHOOK_ALLOW_PRIVATE", "y"), ("KACT_DATABASE_URL", "mysql://db/kact"),
    ("KACT_DATABASE_URL", "postgresql://db:port/kact"), ("KACT_NATS_URL", "bus:4222"),
])
def test_a_bad_scheduler_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingError, match=f"^{variable} must be .*, got "):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(("variable", "value"), [
    ("KACT_APPROVAL_REMIND_AFTER", "0"), ("KACT_APPROVAL_ESCALATE_AFTER", "1h"),
    ("KACT_WINDOW_WARNING_BEFORE", "nan"), ("KACT_WEBHOOK_TIMEOUT", "0"), ("KACT_WEBHOOK_MAX_ATTEMPTS", "0"),
    ("KACT_WEBHOOK_BASE_DELAY", "-1"), ("KACT_WEBHOOK_MAX_DELAY", "x"), ("KACT_WEBHOOK_ALLOW_PRIVATE", "maybe"),
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


def test_a_database_password_never_appears_in_the_error() -> None:
    with pytest.raises(SettingError) as error:
        Settings.from_env({"KACT_DATABASE_URL": "mysql://kact:s3cret@db/kact"})
    assert "s3cret" not in str(error.value)
