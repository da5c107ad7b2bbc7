"""Checking the files and folders a user names, before any work.

Each check returns the path or raises MsabenchError with one line naming the argument,
the path and what is wrong with it, so that a typo costs nothing: no traceback, no
training run that fails at its first write. `publish` puts a finished output file in place.
"""

from __future__ import annotations

import os
from pathlib import Path

from msabench.errors import MsabenchError


def publish(tmp: str | Path, final: str | Path) -> None:
    """Move a finished temporary file onto `final` atomically, with the mode a plain open() would give
    it: mkstemp makes 0600 files, which a user's group could not read."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)


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


def output_file(path: str | Path, what: str) -> Path:
    """A file that can be written: not a folder, under a folder that exists or can be made."""
    p = Path(path)
    if p.is_dir():
        raise MsabenchError(f"{what} {p}: is a folder; give a file name")
    _creatable(p.parent, what, p)
    if p.exists() and not os.access(p, os.W_OK):
        raise MsabenchError(f"{what} {p}: exists and is not writable")
    return p


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
