"""The app for ASGI servers that spawn workers: every setting, resolved, comes from the environment."""

from __future__ import annotations

from kact_contracts import logs
from kact_contracts.lifecycle import follow_supervisor
from litestar import Litestar

from scheduler.bootstrap import create_app
from scheduler.settings import Settings


def create_from_env() -> Litestar:
    follow_supervisor()  # a worker of `kact up` ends with it
    settings = Settings.from_env()
    logs.configure("api", settings.log_level, settings.log_format)
    return create_app(settings)
