"""The process that runs submission code, and the one-way-safe pipe to it.

A submission file is untrusted code. It never runs in the process that holds evaluation
labels or writes results: the host of a job (the driver, or a Ray task) starts a worker
process (`python -m msabench.isolation`) and asks it, one call at a time, to import the
file, build, fit and predict (msabench.ingestion). The worker holds what a model may see:
train and valid with labels, and the corrupted evaluation batches it is handed, never
their labels.

The pipe is safe in one direction on purpose. What the host sends is pickled (the host is
msabench's own code). What a worker sends back is decoded by `decode`, which builds only
None, bools, numbers, strings, lists, string-keyed dicts and numeric numpy arrays: a
submission that takes over its worker can lie about its predictions, nothing more; it
cannot make the host run code (pickle could).

Limits (`Limits`): `timeout` seconds per call (import, build, fit, one predict batch),
`memory_gb` as the worker's RLIMIT_DATA, `sandbox` to run the worker under bubblewrap
(msabench.sandbox). Processes a submission starts end with its job.

Without a sandbox the worker is kept between jobs, as Ray keeps its workers: a fresh
Python per job would import torch again (about 3 s here). It is replaced after a job that
used CUDA (freeing its GPU memory), and after every sandboxed job.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

import numpy as np

from msabench import progress
from msabench.errors import MsabenchError

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder msabench is imported from
MAX_REPLY = 512 << 20  # bytes a worker may send in one reply (predictions are a few KB)


@dataclass(frozen=True)
class Limits:
    """What a submission's worker may use: seconds per call, GB of memory, and whether it is sandboxed."""

    timeout: float | None = None
    memory_gb: float | None = None
    sandbox: bool = False

    def check(self) -> "Limits":
        for flag, value in (("--timeout", self.timeout), ("--memory", self.memory_gb)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not np.isfinite(value) or value <= 0):
                raise MsabenchError(f"{flag} must be a finite number > 0, got {value}")
        if self.memory_gb is not None and self.memory_gb < 0.5:
            raise MsabenchError(f"--memory {self.memory_gb:g}: a worker needs at least 0.5 GB (Python and numpy)")
        if self.sandbox:
            from msabench import sandbox

            problem = sandbox.unavailable()
            if problem:
                raise MsabenchError(f"--sandbox: {problem}")
        return self


NO_LIMITS = Limits()  # the default: no timeout, no memory cap, no sandbox


# ---- the wire: what a worker may send back --------------------------------------------------------

_DTYPES = {"<f8", "<f4", "<f2", "<i8", "<i4", "|i1", "|u1", "|b1", "<c16", "<c8"}


def encode(value: Any) -> bytes:
    """Plain data and numeric arrays -> bytes (`decode` reads them back and nothing else)."""
    arrays: list[np.ndarray] = []
    offset = 0

    def walk(v):
        nonlocal offset
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return float(v)
        if isinstance(v, np.ndarray):
            a = np.ascontiguousarray(v)
            if a.dtype.str not in _DTYPES:
                raise TypeError(f"an array of dtype {a.dtype} cannot be sent")
            arrays.append(a)
            offset += a.nbytes
            return {"__array__": [a.dtype.str, list(a.shape), offset - a.nbytes]}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {str(k): walk(x) for k, x in v.items()}
        raise TypeError(f"a {type(v).__name__} cannot be sent")

    head = json.dumps(walk(value)).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(a.tobytes() for a in arrays)


class WireError(Exception):
    """A reply that is not what `encode` makes."""


def decode(raw: bytes) -> Any:
    if len(raw) < 8:
        raise WireError("short reply")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise WireError("bad header length")
    body = memoryview(raw)[8 + n:]
    try:
        tree = json.loads(raw[8:8 + n])
    except (ValueError, RecursionError) as e:
        raise WireError(f"bad header: {type(e).__name__}") from None

    def walk(v, depth=0):
        if depth > 50:
            raise WireError("nested too deep")
        if isinstance(v, list):
            return [walk(x, depth + 1) for x in v]
        if isinstance(v, dict):
            if "__array__" in v:
                try:
                    dtype, shape, start = v["__array__"]
                    dtype = np.dtype(dtype) if dtype in _DTYPES else None
                    shape = tuple(int(s) for s in shape if isinstance(s, int) and not isinstance(s, bool) and s >= 0)
                    size = int(np.prod(shape, dtype=np.int64)) * (dtype.itemsize if dtype else 0)
                except (TypeError, ValueError):
                    raise WireError("bad array") from None
                if (dtype is None or len(shape) != len(v["__array__"][1]) or not isinstance(start, int)
                        or start < 0 or start + size > len(body)):
                    raise WireError("bad array")
                return np.frombuffer(body[start:start + size], dtype=dtype).reshape(shape).copy()
            return {str(k): walk(x, depth + 1) for k, x in v.items()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise WireError("bad value")

    try:
        return walk(tree)
    except RecursionError:
        raise WireError("nested too deep") from None


# ---- the host side --------------------------------------------------------------------------------

class Worker:
    """One worker process, its pipe, and its limits."""

    def __init__(self, limits: Limits = NO_LIMITS, binds: tuple[Path, ...] = ()):
        self.limits = limits
        self.conn, theirs = Pipe(duplex=True)
        env = dict(os.environ) if not limits.sandbox else _sandbox_env()  # /proc/self/environ keeps the first
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        memory = str(int(limits.memory_gb * 2**30)) if limits.memory_gb else "0"
        cmd = [sys.executable, "-m", "msabench.isolation", str(theirs.fileno()), memory]
        if limits.sandbox:
            from msabench import sandbox

            cmd = sandbox.command(binds, _ROOT) + cmd
        try:
            # a session of its own: the worker and whatever it starts form one process group
            self.proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True)
        finally:
            theirs.close()
        self.relay = progress.relay(self.proc.stderr)  # its log lines print above the grid's bar

    def stop(self) -> None:
        self.end_children()  # first, while they are still the worker's descendants
        self.conn.close()  # an idle worker reads end-of-file and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.relay.join(timeout=5)  # its last lines printed before the caller's

    def kill(self) -> None:
        self.end_children(all_of_them=True)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()

    def end_children(self, all_of_them: bool = False) -> None:
        """Kill what the worker started (its process group and its descendants), the worker itself only
        with `all_of_them`; sandboxed workers' children also die with the sandbox's PID namespace."""
        table = _proc_table()
        keep = set() if all_of_them else _chain_to_worker(self.proc.pid, table)
        group = {p for p, (_, g) in table.items() if g == self.proc.pid}
        for pid in _descendants(self.proc.pid, table) | group:
            if pid != self.proc.pid and pid not in keep:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def call(self, fn: Callable, args: tuple, what: str, doing: str) -> Any:
        """`fn(*args)` in the worker: its (decoded) return value, or MsabenchError.

        `what` names the job and `doing` the call, for a worker that dies or runs out of time.
        """
        env = dict(os.environ) if not self.limits.sandbox else _sandbox_env()
        cwd = os.getcwd() if not self.limits.sandbox else "/tmp"
        try:
            self.conn.send((fn, args, env, cwd))
            deadline = None if self.limits.timeout is None else time.monotonic() + self.limits.timeout
            while not self.conn.poll(None if deadline is None else max(0.0, deadline - time.monotonic())):
                if deadline is not None and time.monotonic() >= deadline:
                    self.kill()
                    raise TimeoutError
            raw = self.conn.recv_bytes(MAX_REPLY)
        except TimeoutError:
            raise MsabenchError(f"{what}: {doing} took longer than --timeout {self.limits.timeout:g} s; "
                                "its process was stopped") from None
        except (EOFError, OSError) as e:  # the worker died mid-call, or sent too much
            if isinstance(e, OSError) and "bad message length" in str(e):
                self.kill()
                raise MsabenchError(f"{what}: its process sent a reply over {MAX_REPLY >> 20} MB during {doing}; "
                                    "it was stopped") from None
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            self.kill()
            if code is None:
                raise MsabenchError(f"{what}: its process closed its pipe during {doing}; it was stopped") from None
            hint = (f" (--memory {self.limits.memory_gb:g} GB may have been reached)" if self.limits.memory_gb
                    else "")
            raise MsabenchError(f"{what}: its process {ended(code)} during {doing}{hint}") from None
        except BaseException:  # Ctrl-C or an error here: the call goes too
            self.kill()
            raise
        try:
            reply = decode(raw)
            kind, value, retire = reply["kind"], reply["value"], reply["retire"]
            if kind not in ("ok", "error") or (kind == "error" and not isinstance(value, str)):
                raise WireError("bad reply")
        except (WireError, KeyError, TypeError):
            self.kill()
            raise MsabenchError(f"{what}: its process sent a malformed reply during {doing}; it was stopped") from None
        self.retire = bool(retire)
        if kind == "ok":
            return value
        if self.limits.memory_gb and "MemoryError" in value:
            value += f" (--memory {self.limits.memory_gb:g} GB)"
        raise MsabenchError(value)

    retire = False


_SANDBOX_ENV = ("CUDA_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "CUBLAS_", "TORCH_", "PYTORCH_", "PYTHONHASHSEED")


def _sandbox_env() -> dict:
    """A sandboxed worker's environment: how to compute, nothing of the user's (paths, tokens)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_SANDBOX_ENV)}
    env.update(HOME="/tmp", TMPDIR="/tmp", PATH="/usr/bin:/bin", LANG="C.UTF-8", PYTHONPATH=_ROOT)
    return env


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process this host can see (Linux /proc; {} elsewhere)."""
    out = {}
    for d in (os.listdir("/proc") if os.path.isdir("/proc") else ()):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            out[int(d)] = (int(fields[1]), int(fields[2]))
    return out


def _descendants(pid: int, table: dict[int, tuple[int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _chain_to_worker(pid: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """The worker process (a bubblewrap worker's Python is a descendant of bwrap) and the processes
    between: the shallowest process running msabench.isolation, and its ancestors up to `pid`."""
    level, seen = [pid], set()
    while level:
        for p in level:
            try:
                cmd = Path(f"/proc/{p}/cmdline").read_bytes()
            except OSError:
                continue
            if b"msabench.isolation" in cmd:
                chain = {p}
                while p != pid and p in table:
                    p = table[p][0]
                    chain.add(p)
                return chain
        seen.update(level)
        level = [c for c, (ppid, _) in table.items() if ppid in level and c not in seen]
    return {pid}


_worker: Worker | None = None
_limits = NO_LIMITS  # what `call` and `warm_up` use (configure)
_staging: Path | None = None


def configure(limits: Limits) -> None:
    """The limits of the workers `call` and `warm_up` start (a grid sets its own before probing files)."""
    global _limits
    _limits = limits


def staging() -> Path:
    """This host's folder of what workers read: submission copies and label-free inputs (a sandbox binds it)."""
    global _staging
    if _staging is None:
        _staging = Path(tempfile.mkdtemp(prefix="msabench-inputs-"))
    return _staging


def stage(name: str, data: bytes) -> Path:
    """`data` as the file `name` in the staging folder (written once)."""
    path = staging() / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def worker(limits: Limits | None = None) -> Worker:
    """The worker for the next job: the kept one when its limits match, else a fresh one."""
    global _worker
    limits = _limits if limits is None else limits
    if _worker is not None and (_worker.proc.poll() is not None or _worker.limits != limits or limits.sandbox):
        _worker.kill() if _worker.proc.poll() is None else _worker.conn.close()
        _worker = None
    if _worker is None:
        _worker = Worker(limits, (staging(),))
    return _worker


def job_done(w: Worker) -> None:
    """After a job: end what its submission started; retire a worker that used CUDA or a sandbox."""
    global _worker
    if w.retire or w.limits.sandbox or w.proc.poll() is not None:
        w.stop() if w.proc.poll() is None else w.kill()
        if _worker is w:
            _worker = None
    else:
        w.end_children()


def warm_up() -> None:
    """Start the worker now, without waiting for it: it imports what jobs need while the caller goes on
    (not for a sandbox: each sandboxed call gets a fresh one)."""
    if not _limits.sandbox:
        worker()


def call(fn: Callable, args: tuple, what: str, doing: str = "start-up") -> Any:
    """One call in the kept worker (e.g. probing a file's name); see `Worker.call`."""
    w = worker()
    try:
        return w.call(fn, args, what, doing)
    finally:
        if w.proc.poll() is not None or w.retire:
            job_done(w)


@atexit.register
def stop() -> None:
    """Stop the worker (at exit, or to measure a cold start); the next call starts a fresh one."""
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None


@atexit.register
def _remove_staging() -> None:
    global _staging
    if _staging is not None and os.getpid() == _staging_owner:
        shutil.rmtree(_staging, ignore_errors=True)
        _staging = None


_staging_owner = os.getpid()


def ended(code: int) -> str:
    """`exited with status 5 (...)` / `was killed by signal SIGSEGV` from a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name}"
    return f"exited with status {code} (a call to os._exit, or a crash in native code)"


# ---- the worker side ------------------------------------------------------------------------------

def _watch_parent() -> None:
    """End this worker when its host is gone (kill -9): an orphan must not go on computing."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _used_cuda() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


def _serve(fd: int, memory: int) -> None:
    conn = Connection(fd)
    send_bytes = conn.send_bytes  # bound now: a submission that patches Connection changes nothing here
    _watch_parent()
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    for module in ("msabench.ingestion", "torch"):  # what jobs need, imported once per worker
        try:
            __import__(module)
        except ImportError:
            pass
    while True:
        try:
            fn, args, env, cwd = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the host closed the pipe, or is gone (or the submission closed it)
            os._exit(0)
        try:
            if os.environ != env:
                os.environ.clear()
                os.environ.update(env)
            os.chdir(cwd)
            reply = {"kind": "ok", "value": fn(*args)}
        except MsabenchError as e:
            reply = {"kind": "error", "value": str(e)}
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036 - a bug in msabench itself: still one line for the host
            first = _first_line(e)
            reply = {"kind": "error", "value": f"{type(e).__name__}: {first} (in msabench's worker process; "
                                               "please report it)"}
        reply["retire"] = _used_cuda()
        try:
            payload = encode(reply)
        except Exception as e:  # noqa: BLE001 - a value that cannot be sent
            payload = encode({"kind": "error", "value": f"the call's result could not be sent back: {e}",
                              "retire": reply["retire"]})
        try:
            send_bytes(payload)
        except OSError:  # the pipe is gone (the host stopped us, or the submission closed it): nothing to tell
            os._exit(1)
        if reply["retire"]:
            break
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # not sys.exit: threads a submission left running must not keep the process alive


def _first_line(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        return "(its message could not be read)"
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":
    try:
        _serve(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the host reports it
        os._exit(130)
