"""`--sandbox`: a submission's worker under bubblewrap, for a maintainer who runs strangers' files.

Outside the sandbox a submission runs as the user: it cannot reach evaluation labels through
msabench (they never enter its process), but it can open any file the user can, the data
file included. Inside, the worker sees only, read-only: the system's libraries (/usr, the
dynamic loader's files), the Python environment (its prefixes and site-packages), msabench's
package (with the synthetic-data generator blanked: it would regenerate the labels), the
submission file and the label-free inputs of its job; a private /tmp, no network (its own
empty network namespace), no home, no results folder, no data file, and its own PID
namespace, so every process it starts dies with it. GPUs stay usable (/dev/nvidia*).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")
ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf",
       "/etc/passwd", "/etc/group", "/etc/alternatives")
HIDDEN = ("data/synth.py",)  # package files a sandboxed submission gets empty


@functools.cache
def unavailable() -> str | None:
    """Why a sandbox cannot be made on this machine, or None when it can."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        proc = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap cannot start: {e}"
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        return f"bubblewrap cannot make a sandbox here (user namespaces unavailable?): {first}"
    return None


def _python_dirs() -> list[str]:
    """The Python environment: prefixes and the site-packages on sys.path (never the project folder)."""
    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
    for entry in sys.path:
        if entry and os.path.isdir(entry) and ("site-packages" in entry or "dist-packages" in entry):
            dirs.add(os.path.realpath(entry))
    return sorted(dirs)


def command(binds: tuple[Path, ...], root: str) -> list[str]:
    """The bwrap command line that runs a worker with only `binds` (files or folders) besides its environment."""
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    for path in SYSTEM + ETC:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    for d in _python_dirs():
        cmd += ["--ro-bind", d, d]
    package = os.path.realpath(os.path.join(root, "msabench"))
    cmd += ["--ro-bind", package, package]
    for rel in HIDDEN:
        if os.path.exists(os.path.join(package, rel)):
            cmd += ["--ro-bind", "/dev/null", os.path.join(package, rel)]
    for p in binds:
        real = os.path.realpath(p)
        cmd += ["--ro-bind", real, real]
    for dev in sorted(Path("/dev").glob("nvidia*")):
        cmd += ["--dev-bind", str(dev), str(dev)]
    return cmd + ["--"]
