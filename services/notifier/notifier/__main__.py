"""`python -m notifier`: run the notifier until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from notifier.service import Notifier
from notifier.settings import NotifierSettings


async def main() -> None:
    notifier = Notifier(NotifierSettings.from_env())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, notifier.stop)
    await notifier.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s notifier %(levelname)s %(message)s")
    uvloop.run(main())
