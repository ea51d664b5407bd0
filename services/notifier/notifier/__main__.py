"""`python -m notifier`: run the notifier until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop
from kact_contracts import logs, tracing
from kact_contracts.environment import SettingError
from kact_contracts.lifecycle import follow_supervisor

from notifier.service import Notifier
from notifier.settings import NotifierSettings


async def main(settings: NotifierSettings) -> None:
    notifier = Notifier(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, notifier.stop)
    follow_supervisor()  # started by `kact up`: end with it
    await notifier.run()


if __name__ == "__main__":
    try:
        settings = NotifierSettings.from_env()
    except SettingError as error:
        for line in str(error).splitlines():  # every bad setting, a line each
            print(f"notifier: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure("notifier", settings.log_level, settings.log_format)
    tracing.configure("notifier")
    uvloop.run(main(settings))
