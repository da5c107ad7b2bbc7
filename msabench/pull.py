"""The committed board's runs, anywhere: an index of their sha256, shipped in the package, and a pull
that fetches them from a folder or a web address and keeps them only if every byte matches.

`leaderboard/index/runs.sha256` lists every file under `leaderboard/runs` (`sha256  path`, sorted);
`make leaderboard` rewrites it and a test checks it against the committed files. The wheel carries
it (`msabench/shipped/index`), so an installed msabench knows what the board's runs must be without
trusting where they come from: `msabench board pull --from SOURCE --out DIR` then gives the runs
to compare against (`msabench compare mine lnln --results results DIR`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from msabench import paths
from msabench.errors import MsabenchError
from msabench.protocols import shipped

INDEX_NAME = "runs.sha256"


def default_index() -> Path:
    return shipped("index", "leaderboard/index") / INDEX_NAME


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_index(runs_dir: str | Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `runs_dir` that the board shares: hidden files and
    temporary folders left out, and the labels of user-supplied data (they are the data's, not the
    board's: committed without them and read back with --data)."""
    root = Path(runs_dir)
    out = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if not f.is_file() or any(part.startswith(".") for part in rel.split("/")):
            continue
        if f.name == "labels.parquet" and not _generated(f.parent):
            continue
        out[rel] = digest(f.read_bytes())
    return out


def _generated(unit: Path) -> bool:
    """Whether the unit was made on data msabench generates (its labels are then part of the run)."""
    try:
        return str(json.loads((unit / "manifest.json").read_text()).get("dataset_source", "")).startswith("generated")
    except (OSError, ValueError):
        return False


def render(index: dict[str, str]) -> str:
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(index.items()))


def write_index(runs_dir: str | Path, out: str | Path) -> Path:
    out = Path(out)
    with paths.atomic_file(out) as tmp:
        tmp.write_text(render(make_index(runs_dir)))
    return out


def read_index(path: str | Path) -> dict[str, str]:
    """The index file: one `sha256  relative/path` per line; a malformed line is refused with its number."""
    path = Path(path)
    if not path.is_file():
        raise MsabenchError(f"{path}: no index of the board's runs (msabench board index writes one)")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        sha, sep, rel = line.partition("  ")
        bad = (not sep or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha) or not rel
               or rel.startswith("/") or ".." in rel.split("/"))
        if bad:
            raise MsabenchError(f"{path}, line {n}: expected 'SHA256  relative/path', got {line[:80]!r}")
        out[rel] = sha
    return out


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _fetch(source: str, rel: str) -> bytes:
    if _is_url(source):
        url = source.rstrip("/") + "/" + urllib.parse.quote(rel)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - http(s) only, checked above
                return r.read()
        except (urllib.error.URLError, OSError) as e:
            raise MsabenchError(f"--from {source}: {rel} could not be fetched ({e})") from None
    f = Path(source) / rel
    if not f.is_file():
        raise MsabenchError(f"--from {source}: {rel} is not there")
    return f.read_bytes()


def pull(source: str, out: str | Path, index: str | Path | None = None) -> int:
    """Every file the index names, from `source` (a folder, or an http(s) address of the runs folder),
    checked against its sha256, into `out`, which must not exist yet: written whole or not at all.
    Returns the number of files."""
    want = read_index(index or default_index())
    out = Path(out)
    if out.exists():
        raise MsabenchError(f"--out {out}: exists; board pull writes a new folder")
    if not _is_url(source) and not Path(source).is_dir():
        raise MsabenchError(f"--from {source}: no such folder (or an http(s) address)")
    paths.output_dir(out.parent, "--out")  # a folder it can be made in, said in one line before any work
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, sha in want.items():
            data = _fetch(source, rel)
            if digest(data) != sha:
                raise MsabenchError(f"--from {source}: {rel} has sha256 {digest(data)[:12]}..., the index says "
                                    f"{sha[:12]}...: not the board's run; nothing written")
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return len(want)
