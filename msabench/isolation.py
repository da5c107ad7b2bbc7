"""Running a submission's code in a worker process, so that it cannot take the driver down.

A submission file is user code: it may call `sys.exit`, `os._exit`, or crash inside a
native extension. The driver never imports or runs it itself: `call` runs a function in
a worker process (`python -m msabench.isolation`), which reports the step it has reached
(import, build, fit, predict ...) and then its result or one line on what went wrong. A
worker that dies without a word is reported with its exit status or signal and the last
step it reached, and the next call starts a fresh one.

The worker is kept between calls, as Ray keeps its workers between tasks: a fresh Python
per job would import torch again each time (about 3 s here). It is replaced after any
job that used CUDA, so a job's GPU memory is freed when it ends. A fresh interpreter,
not a fork of the driver: the driver may hold OpenMP thread pools or a CUDA context, which
do not survive `fork`, and `multiprocessing`'s spawn would re-import the user's script.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from msabench.errors import MsabenchError

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder msabench is imported from


class Worker:
    """One worker process and the pipe to it."""

    def __init__(self):
        self.conn, theirs = Pipe(duplex=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "msabench.isolation", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()

    def stop(self) -> None:
        self.conn.close()  # an idle worker reads end-of-file and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.conn.close()


_worker: Worker | None = None


def warm_up() -> None:
    """Start the worker now, without waiting for it: it imports what jobs need while the caller goes on."""
    global _worker
    if _worker is None:
        _worker = Worker()


def call(fn: Callable, args: tuple, what: str) -> Any:
    """`fn(*args, step=report)` in the worker process: its return value, or MsabenchError.

    `fn` must be importable by name (a module-level function) and `args` picklable; `what`
    names the work in the message about a worker that died. `step(text)` tells the driver
    where the worker is, so that a silent death can be placed.
    """
    global _worker
    if _worker is not None and _worker.proc.poll() is not None:  # died while idle (killed from outside)
        _worker.conn.close()
        _worker = None
    if _worker is None:
        _worker = Worker()
    worker, step, outcome = _worker, "start-up", None
    try:
        worker.conn.send((fn, args, dict(os.environ), os.getcwd()))  # the job sees the driver's as they are now
        while outcome is None:
            kind, value, *rest = worker.conn.recv()
            if kind == "step":
                step = value
            else:
                outcome = (kind, value, bool(rest and rest[0]))
    except (EOFError, OSError):  # the worker died mid-job
        code = worker.proc.wait()
        worker.conn.close()
        _worker = None
        raise MsabenchError(f"{what}: its process {ended(code)} during {step}") from None
    except BaseException:  # Ctrl-C or an error in the driver: the job goes too
        worker.kill()
        _worker = None
        raise
    kind, value, retire = outcome
    if retire:  # the worker ends after a job that used CUDA, freeing its GPU memory
        worker.stop()
        _worker = None
    if kind == "ok":
        return value
    raise MsabenchError(value)


@atexit.register
def stop() -> None:
    """Stop the worker (at exit, or to measure a cold start); the next call starts a fresh one."""
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None


def ended(code: int) -> str:
    """`exited with status 5 (...)` / `was killed by signal SIGSEGV` from a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name}"
    return f"exited with status {code} (a call to os._exit, or a crash in native code)"


def _watch_parent() -> None:
    """End this worker when the driver is gone (kill -9): an orphan must not go on computing."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _used_cuda() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


def _serve(fd: int) -> None:
    conn = Connection(fd)
    _watch_parent()
    for module in ("msabench.executors", "torch"):  # what jobs need, imported once per worker
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    while True:
        try:
            fn, args, env, cwd = conn.recv()
        except (EOFError, OSError):  # the driver closed the pipe, or is gone
            break
        try:
            if os.environ != env:
                os.environ.clear()
                os.environ.update(env)
            os.chdir(cwd)
            value = fn(*args, step=lambda text: conn.send(("step", text)))
            message = ("ok", value)
        except MsabenchError as e:
            message = ("error", str(e))
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036 - a bug in msabench itself: still one line for the driver
            first = str(e).splitlines()[0] if str(e) else ""
            message = ("error", f"{type(e).__name__}: {first} (in msabench's worker process; please report it)")
        retire = _used_cuda()
        try:
            conn.send((*message, retire))
        except Exception as e:  # noqa: BLE001 - an unpicklable result
            conn.send(("error", f"the job's result could not be sent back: {type(e).__name__}: {e}", retire))
        if retire:
            break
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # not sys.exit: threads a submission left running must not keep the process alive


if __name__ == "__main__":
    try:
        _serve(int(sys.argv[1]))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the driver reports it
        os._exit(130)
