"""A job on a daemon thread of its own: started once, asked to stop, and watched for being alive."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundThread:
    """Runs `_run()` on a daemon thread; `_run` returns once `self._stopping` is set."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError
