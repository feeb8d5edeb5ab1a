"""pocketsphinx in a worker process.

Its decoder holds the GIL for the whole of ``process_raw``: decoding in a thread would stall the
event loop (and /health) for seconds on long free-mode uploads. A worker process keeps the loop
free, and a native crash there costs one request, not the unit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .stt import Pocketsphinx, SttError, Transcript

_ENGINE: Pocketsphinx | None = None


def _init_worker() -> None:
    global _ENGINE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the worker stops
    _ENGINE = Pocketsphinx()
    _ENGINE.warm()


def _transcribe(pcm: bytes, duration_s: float, mode: str, phrases: tuple[str, ...]) -> Transcript:
    assert _ENGINE is not None
    return _ENGINE.transcribe(pcm, duration_s, mode, phrases)


def _ping() -> bool:
    return _ENGINE is not None


class SttWorker:
    def __init__(self, timeout_s: float = 180.0) -> None:
        self.timeout_s = timeout_s
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def warm(self) -> None:
        """Starts the worker and loads both decoders (about a second) before the first request."""
        pool = self._executor()
        await asyncio.wrap_future(pool.submit(_ping))

    async def transcribe(self, pcm: bytes, duration_s: float, mode: str, phrases: tuple[str, ...]) -> Transcript:
        pool = self._executor()
        try:
            future = pool.submit(_transcribe, pcm, duration_s, mode, phrases)
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except BrokenProcessPool:
            self._discard(pool)
            raise SttError(503, "the speech recognizer process died; a new one starts with the next request") from None
        except TimeoutError:
            raise SttError(504, f"speech recognition took longer than {self.timeout_s:g} s") from None

    def alive(self) -> tuple[bool, str]:
        ok, reason = Pocketsphinx.available()
        if not ok:
            return ok, reason
        if self._pool is None:
            return True, f"{reason}; worker starts on demand"
        return True, f"{reason}; worker process running"

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
