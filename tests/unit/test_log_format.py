"""The log format: JSON lines unless a person reads stderr at a terminal (or the settings say otherwise)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kact_contracts import logs
from kact_contracts.environment import SettingError
from notifier.settings import NotifierSettings
from scheduler.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def written(stream: io.StringIO, fmt: str) -> str:
    logger = logging.getLogger("kact.test.format")
    handler = logs.handler("jobs", fmt, stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("course %s moved", "c-1", extra={"course_id": "c-1"})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_auto_is_json_off_a_terminal_and_the_console_format_at_one() -> None:
    line = json.loads(written(io.StringIO(), "auto"))
    assert line["event"] == "course c-1 moved" and line["level"] == "warning" and line["process"] == "jobs"
    assert line["logger"] == "kact.test.format" and line["course_id"] == "c-1" and line["timestamp"]
    console = written(Terminal(), "auto")
    assert "course c-1 moved" in console and not console.lstrip().startswith("{")
    assert json.loads(written(Terminal(), "json"))["course_id"] == "c-1"


def test_the_settings_take_the_format_and_level_and_refuse_others() -> None:
    settings = Settings.from_env({"KACT_LOG_FORMAT": "console", "KACT_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("console", "DEBUG")
    assert Settings.from_env(settings.as_env()).log_format == "console"
    assert (Settings().log_format, Settings().log_level) == ("auto", "INFO")
    notifier = NotifierSettings.from_env({"KACT_DATABASE_URL": "postgresql://h/db", "KACT_NATS_URL": "nats://h:4222",
                                          "KACT_LOG_FORMAT": "json", "KACT_LOG_LEVEL": "warning"})
    assert (notifier.log_format, notifier.log_level) == ("json", "WARNING")
    for name, value in (("KACT_LOG_FORMAT", "xml"), ("KACT_LOG_LEVEL", "loud")):
        with pytest.raises(SettingError, match=name):
            Settings.from_env({name: value})


def test_a_webhook_url_is_logged_without_its_user_info_or_query() -> None:
    from notifier.webhooks import _log_fields, _without_secrets

    url = "https://partner:s3cr3t@hooks.example.org:8443/kact/in?token=abc123#x"
    assert _without_secrets(url) == "https://hooks.example.org:8443/kact/in"
    payload = json.dumps({"event": {"courseid": "c-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}})
    assert _log_fields(payload) == {"course_id": "c-1", "trace_id": "a" * 32}
    assert _log_fields("not json") == {}


@contextmanager
def configured(process: str) -> Iterator[io.StringIO]:
    """kact's JSON format for `process` into a buffer, and the root logger as it was afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        logs.configure(process, "INFO", "json", out)
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_configure_takes_over_loggers_that_had_handlers_of_their_own() -> None:
    """As `uvicorn scheduler.asgi:create_from_env` runs it: uvicorn configured its loggers first."""
    server = logging.getLogger("uvicorn.error.test")
    server.setLevel(logging.INFO)  # whatever level an earlier test's uvicorn left on "uvicorn.error"
    own = io.StringIO()
    server.addHandler(logging.StreamHandler(own))
    server.propagate = False
    with configured("api") as out:
        server.info("Started server process [%d]", 42)
    assert own.getvalue() == ""
    line = json.loads(out.getvalue())
    assert (line["event"], line["logger"], line["process"]) == ("Started server process [42]", "uvicorn.error.test", "api")


def test_no_webhook_url_or_calendar_feed_token_reaches_the_log() -> None:
    """httpx logs every request's whole URL at INFO (a webhook's user info or query may hold its receiver's token),
    and uvicorn's access log the path of every request (a calendar feed's holds its credential)."""
    access = logging.getLogger("uvicorn.access")
    access_level, access.level = access.level, logging.INFO  # whatever an earlier test's uvicorn left there
    try:
        with configured("notifier") as out:
            logging.getLogger("httpx").info('HTTP Request: %s %s "%s %d %s"', "POST",
                                            "https://partner:s3cr3t@hooks.example.org/in?token=abc123", "HTTP/1.1", 200,
                                            "OK")
            logging.getLogger("httpx").warning("connection to %s failed", "hooks.example.org")
            logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.9:5121", "GET",
                                                     "/calendar-feeds/kact_cal_SECRETTOKEN/calendar.ics", "1.1", 200)
    finally:
        access.setLevel(access_level)
    text = out.getvalue()
    assert "s3cr3t" not in text and "abc123" not in text and "SECRETTOKEN" not in text, text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["logger"] for line in lines] == ["httpx", "uvicorn.access"]
    assert "/calendar-feeds/***/calendar.ics" in lines[1]["event"]
