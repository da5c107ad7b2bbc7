"""What the terminal shows while a grid runs: one bar for the jobs, what the current job is doing on
its right, and log lines (training epochs, a summary per finished job) printed above it.

Everything goes to stderr (stdout stays for results). Lines are printed through tqdm while a bar
is up, so they never break it; worker processes' stderr is relayed here line by line
(`isolation.Worker`). Without a bar (the Python API with progress off) lines print as they come.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

_BAR: list = [None]
_LOCK = threading.Lock()  # the relay threads and the main thread write lines


def line(text: str) -> None:
    """One log line, above the bar when there is one."""
    with _LOCK:
        bar = _BAR[0]
        if bar is not None:
            bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


def finished(text: str) -> None:
    """A job's one-line summary, above the bar; nothing where there is no bar (not a terminal: the
    command's own output then says what finished, and stderr keeps to errors and logs)."""
    with _LOCK:
        bar = _BAR[0]
        if bar is not None and not bar.disable:
            bar.write(text, file=sys.stderr)


def doing(text: str) -> None:
    """What the current job is doing, shown beside the bar (nothing without one)."""
    with _LOCK:
        bar = _BAR[0]
        if bar is not None:
            bar.set_postfix_str(text, refresh=True)


def advance() -> None:
    with _LOCK:
        if _BAR[0] is not None:
            _BAR[0].update(1)


@contextmanager
def bar(total: int, desc: str, unit: str = "job", show: bool = True):
    """The bar of `total` jobs while the block runs (no bar with `show` False)."""
    if not show:
        yield
        return
    from tqdm import tqdm

    b = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=None, dynamic_ncols=True)
    with _LOCK:
        _BAR[0] = b
    try:
        yield
    finally:
        with _LOCK:
            _BAR[0] = None
        b.close()


def relay(stream) -> threading.Thread:
    """A thread that passes a worker's stderr (a binary pipe) on as lines; it ends with the pipe."""

    def run():
        try:
            for raw in iter(stream.readline, b""):
                line(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    t = threading.Thread(target=run, name="msabench-stderr-relay", daemon=True)
    t.start()
    return t
