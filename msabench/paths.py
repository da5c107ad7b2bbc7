"""Checking the files and folders a user names, before any work.

Each check returns the path or raises MsabenchError with one line naming the argument,
the path and what is wrong with it, so that a typo costs nothing: no traceback, no
training run that fails at its first write. `atomic_file` and `publish` put a finished output file in place.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from msabench.errors import MsabenchError


def publish(tmp: str | Path, final: str | Path) -> None:
    """Move a finished temporary file onto `final` atomically, with the mode a plain open() would give
    it: mkstemp makes 0600 files, which a user's group could not read."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)


@contextmanager
def atomic_file(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary file next to `final` to write; put in place (`publish`) when the block ends without
    an error, removed in every case. An OSError on the way (a full disk, a file size limit) names
    `final`, the path the user gave, never the temporary file."""
    final = Path(final)
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        publish(tmp, final)
    except OSError as e:
        raise OSError(e.errno, f"cannot write it: {e.strerror or e}", str(final)) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _one_line(check):
    """A check whose OSError (a name too long for the file system, a loop of links) is the user's error too."""

    @functools.wraps(check)
    def checked(path: str | Path, what: str) -> Path:
        try:
            return check(path, what)
        except OSError as e:
            raise MsabenchError(f"{what} {path}: {e.strerror or e}") from None

    return checked


@_one_line
def input_file(path: str | Path, what: str) -> Path:
    """An existing, readable file."""
    p = Path(path)
    if not p.exists():
        raise MsabenchError(f"{what} {p}: no such file")
    if p.is_dir():
        raise MsabenchError(f"{what} {p}: is a folder, not a file")
    if not os.access(p, os.R_OK):
        raise MsabenchError(f"{what} {p}: not readable (permission denied)")
    return p


@_one_line
def input_dir(path: str | Path, what: str) -> Path:
    """An existing, readable folder."""
    p = Path(path)
    if not p.exists():
        raise MsabenchError(f"{what} {p}: no such folder")
    if not p.is_dir():
        raise MsabenchError(f"{what} {p}: is a file, not a folder")
    if not os.access(p, os.R_OK | os.X_OK):
        raise MsabenchError(f"{what} {p}: not readable (permission denied)")
    return p


@_one_line
def output_file(path: str | Path, what: str) -> Path:
    """A file that can be written: not a folder, under a folder that exists or can be made."""
    p = Path(path)
    if p.is_dir():
        raise MsabenchError(f"{what} {p}: is a folder; give a file name")
    if p.exists() and not p.is_file():  # a device, pipe or socket: it would be replaced by a plain file
        raise MsabenchError(f"{what} {p}: exists and is not a regular file (a device, pipe or socket); "
                            "give a file name")
    _creatable(p.parent, what, p)
    if p.exists() and not os.access(p, os.W_OK):
        raise MsabenchError(f"{what} {p}: exists and is not writable")
    return p


@_one_line
def output_dir(path: str | Path, what: str) -> Path:
    """A folder that exists and is writable, or can be made."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MsabenchError(f"{what} {p}: is a file, not a folder")
    _creatable(p, what, p)
    return p


def _creatable(folder: Path, what: str, shown: Path) -> None:
    """`folder` exists and is writable, or its nearest existing ancestor is a writable folder."""
    here = folder.absolute()
    while not here.exists():
        if here.is_symlink():  # a dangling link: mkdir would fail
            raise MsabenchError(f"{what} {shown}: {here} is a broken symbolic link")
        here = here.parent
    if not here.is_dir():
        raise MsabenchError(f"{what} {shown}: {here} is a file, so no folder can be made under it")
    if not os.access(here, os.W_OK | os.X_OK):
        raise MsabenchError(f"{what} {shown}: cannot write in {here} (permission denied)")
    try:  # os.access trusts the mode bits; root, read-only mounts and /proc need a real try
        fd, probe = tempfile.mkstemp(prefix=".msabench-probe-", dir=here)
    except OSError as e:
        raise MsabenchError(f"{what} {shown}: cannot write in {here} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
