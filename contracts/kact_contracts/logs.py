"""One log format for every kact process (the API, `python -m scheduler.jobs`, `python -m notifier`).

structlog renders every record of the standard `logging` module (ours, uvicorn's, eventsourcing's, nats-py's)
through one handler on the root logger: JSON lines, or structlog's console format for a person at a terminal.
Each line has `timestamp`, `level`, `logger`, `process` (api, jobs, notifier) and `event` (the message), and,
where there is one: `request_id`, `trace_id`, `principal` (a principal's id, never a key), `course_id`.

The request's fields cost one context variable per request (`CONTEXT`, set by the API's middleware): they are
read from it only when a line is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, Protocol, TextIO

import msgspec
import structlog

FORMATS = ("auto", "json", "console")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HANDLER_NAME = "kact"


class LogContext(Protocol):
    """What is known of the work in hand (an HTTP request): it adds its fields to a line being written."""

    request_id: str

    def add_to(self, event: MutableMapping[str, Any]) -> None: ...


# The work in hand of the current task (an HTTP request: `scheduler.http.observe`); None outside any.
CONTEXT: ContextVar[LogContext | None] = ContextVar("kact_log_context", default=None)
# Other fields a line may carry: `trace_id` from the current OpenTelemetry span (`kact_contracts.tracing`).
_field_sources: list[Callable[[MutableMapping[str, Any]], None]] = []


def request_id() -> str | None:
    """The id of the request in hand (None outside a request)."""
    return getattr(CONTEXT.get(), "request_id", None)


def add_field_source(source: Callable[[MutableMapping[str, Any]], None]) -> None:
    """Call `source(event)` for every line written (once per source)."""
    if source not in _field_sources:
        _field_sources.append(source)


def _context_fields(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    context = CONTEXT.get()
    if context is not None:
        context.add_to(event)
    for source in _field_sources:
        source(event)
    return event


def _drop_color_message(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
    return event


def _process_name(process: str) -> structlog.types.Processor:
    def add(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["process"] = process
        return event

    return add


_json = msgspec.json.Encoder(enc_hook=str)  # what it does not know (a UUID subclass, an exception): as text


def _dumps(event: Any, **_: Any) -> str:
    return _json.encode(event).decode()


def resolved_format(fmt: str, stream: TextIO) -> str:
    """`auto`: the console format when `stream` is a terminal, else JSON."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def handler(process: str, fmt: str = "auto", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing records in kact's format (to stderr by default)."""
    stream = stream if stream is not None else sys.stderr
    fmt = resolved_format(fmt, stream)
    renderer: structlog.types.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
        final: list[structlog.types.Processor] = [renderer]
    else:
        final = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(serializer=_dumps)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(process),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    out = logging.StreamHandler(stream)
    out.setFormatter(formatter)
    out.set_name(HANDLER_NAME)
    return out


def _pre_chain(process: str) -> list[structlog.types.Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),  # `extra={"course_id": ...}` of a standard logging call
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _process_name(process),
        _context_fields,
    ]


# Libraries whose INFO lines carry a whole URL: httpx logs every webhook request's, whose user info or query may
# hold the receiver's token. Their warnings and errors still come through.
QUIETED = ("httpx", "httpcore")
# A calendar feed's URL holds its only credential: the access log shows `/calendar-feeds/***/...` instead.
SECRET_PATH = re.compile(r"(/calendar-feeds/)[^/?\s]+")


class _SecretPaths(logging.Filter):
    """Masks the credential in calendar feed URLs in uvicorn's access log lines (their arguments hold the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "/calendar-feeds/" in a for a in record.args):
            record.args = tuple(SECRET_PATH.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def configure(process: str, level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Every record of this process, at `level` and above, in kact's format on stderr (or `stream`); replaces
    what an earlier call installed, and any handler the root logger or another logger had."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(process, fmt, stream))
    # Loggers given handlers of their own before (uvicorn's when its command line runs the app factory) write
    # through the root's instead.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
    root.setLevel(level.upper())
    for name in QUIETED:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _SecretPaths) for f in access.filters):
        access.addFilter(_SecretPaths())
    structlog.configure(
        processors=[*_pre_chain(process), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configured() -> bool:
    """Whether the root logger writes anywhere yet (something, kact or a host like pytest, configured it)."""
    return bool(logging.getLogger().handlers)
