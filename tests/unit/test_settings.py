"""Settings from the environment: every bad value is refused with one error naming its variable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from eventsourcing.cryptography import AESCipher
from kact_contracts import settings as catalogue
from kact_contracts.environment import SettingError
from notifier.settings import NotifierSettings

from scheduler.settings import VARIABLES, Settings

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
        catalogue.read({variable: value})
    with pytest.raises(SettingError, match=f"^{variable} must be "):
        NotifierSettings.from_env({**SERVERS, variable: value})


def test_the_notifier_settings_hold_together() -> None:
    with pytest.raises(SettingError, match="KACT_WEBHOOK_MAX_DELAY .* less than KACT_WEBHOOK_BASE_DELAY"):
        catalogue.read({"KACT_WEBHOOK_BASE_DELAY": "10", "KACT_WEBHOOK_MAX_DELAY": "5"})
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


def test_every_bad_setting_is_reported_on_a_line_of_its_own() -> None:
    with pytest.raises(SettingError) as error:
        catalogue.read({"KACT_HTTP_PORT": "80OO", "KACT_WORKERS": "two", "KACT_WEBHOOK_TIMEOUT": "0",
                        "KACT_NATS_CONSUMER": "a.b"})
    lines = str(error.value).splitlines()
    assert [line.split()[0] for line in lines] == ["KACT_HTTP_PORT", "KACT_WORKERS", "KACT_NATS_CONSUMER",
                                                   "KACT_WEBHOOK_TIMEOUT"]
    assert all(" must be " in line for line in lines)


def test_a_variable_both_services_read_is_parsed_once_into_both() -> None:
    values = catalogue.read({**SERVERS, "KACT_DB_SCHEMA": "clinic_eu", "KACT_NATS_STREAM": "EU",
                             "KACT_WEBHOOK_ALLOW_PRIVATE": "on"})
    scheduler, notifier = Settings.from_values(values), NotifierSettings.from_values(values)
    assert (scheduler.db_schema, scheduler.nats_stream, scheduler.webhook_allow_private) == ("clinic_eu", "EU", True)
    assert (notifier.db_schema, notifier.stream.name, notifier.webhook_allow_private) == ("clinic_eu", "EU", True)


def test_the_defaults_are_the_catalogue_s() -> None:
    """The services' own defaults (dataclass fields, the bus and the notifier's policy) agree with the catalogue,
    which the README and `kact up --help` show."""
    assert Settings.from_env({}) == Settings()
    notifier = NotifierSettings.from_env(SERVERS)
    assert notifier == NotifierSettings(database_url=SERVERS["KACT_DATABASE_URL"], nats_url=SERVERS["KACT_NATS_URL"])
    assert Settings().as_env() == catalogue.as_env({variable: catalogue.default(variable)
                                                    for variable in VARIABLES.values()})


def test_the_readme_table_is_generated_from_the_catalogue() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert catalogue.readme_with_table(readme) == readme, "run: python -m kact_contracts.settings"
    documented = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `KACT_")}
    assert documented == set(catalogue.SETTINGS)


def test_every_variable_the_code_reads_is_in_the_catalogue() -> None:
    """No KACT_* variable is read around the catalogue (the test-only and supervisor ones aside)."""
    import re

    root = Path(__file__).resolve().parents[2]
    sources = [*root.glob("services/*/*/**/*.py"), *root.glob("contracts/kact_contracts/*.py")]
    named = {name for path in sources for name in re.findall(r'"(KACT_[A-Z_]+)"', path.read_text(encoding="utf-8"))}
    internal = {"KACT_SUPERVISOR_PID", "KACT_EVENTS"}  # set by `kact up` for its children; a stream's name
    assert named - internal <= set(catalogue.SETTINGS), named - internal - set(catalogue.SETTINGS)
    assert set(catalogue.SETTINGS) <= named


def test_kact_up_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from scheduler.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["up", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for variable, setting in catalogue.SETTINGS.items():
        assert f"{variable} (default {setting.shown_default.replace('`', '')})" in text
    assert "--port" in text and "--data-dir" in text


def test_kact_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from scheduler.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert (exit_.value.code, capsys.readouterr().out.strip()) == (0, f"kact {version('kact')}")


@pytest.mark.parametrize("port", ["80OO", "65536", "-1"])
def test_kact_up_refuses_a_port_that_is_not_one(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from scheduler.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["up", "--port", port])
    assert exit_.value.code == 2
    assert f"argument --port: must be an integer from 0 to 65535, got {port!r}" in capsys.readouterr().err


def test_kact_up_says_every_bad_setting_before_starting_anything(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.cli import main

    monkeypatch.setenv("KACT_HTTP_PORT", "80OO")
    monkeypatch.setenv("KACT_WEBHOOK_MAX_ATTEMPTS", "0")
    assert main(["up"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "kact: KACT_HTTP_PORT must be an integer from 0 to 65535, got '80OO'",
        "kact: KACT_WEBHOOK_MAX_ATTEMPTS must be an integer of at least 1, got '0'",
    ]


def test_a_blank_metrics_port_is_off_and_the_log_format_takes_any_case() -> None:
    values = catalogue.read({"KACT_JOBS_METRICS_PORT": "  ", "KACT_LOG_FORMAT": "JSON", "KACT_LOG_LEVEL": "debug"})
    assert values["KACT_JOBS_METRICS_PORT"] is None and values["KACT_NOTIFIER_METRICS_PORT"] is None
    assert (values["KACT_LOG_FORMAT"], values["KACT_LOG_LEVEL"]) == ("json", "DEBUG")
    assert catalogue.read({"KACT_JOBS_METRICS_PORT": "0"})["KACT_JOBS_METRICS_PORT"] == 0


def test_an_option_of_kact_up_stands_for_its_variable(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`--port` replaces KACT_HTTP_PORT before the settings are read: a bad variable it overrides is no error."""
    from scheduler.cli import main

    monkeypatch.setenv("KACT_HTTP_PORT", "80OO")
    monkeypatch.setenv("KACT_WORKERS", "two")
    assert main(["up", "--port", "8080"]) == 2
    assert capsys.readouterr().err.splitlines() == ["kact: KACT_WORKERS must be an integer of at least 1, got 'two'"]
