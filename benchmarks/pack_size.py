"""What packing the runs saves: the same units as one folder per seed and as one Parquet per model.

Writes every unit of a results folder both ways into a scratch folder (labels only where the board
keeps them: generated data) and measures the files, the bytes and the git pack of each
(`git gc --aggressive`), the size a clone carries.

Usage: python benchmarks/pack_size.py [--results leaderboard/runs] [--data ../shared/data/mosi-utterance.npz]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from msabench import results  # noqa: E402


def git_pack_bytes(folder: Path) -> int:
    env = ["-c", "user.email=bench@msabench", "-c", "user.name=bench"]
    for cmd in (["init", "-q"], ["add", "-A"], [*env, "commit", "-qm", "runs"], ["gc", "-q", "--aggressive"]):
        subprocess.run(["git", *cmd], cwd=folder, check=True)
    return sum(f.stat().st_size for f in (folder / ".git" / "objects" / "pack").iterdir())


def files_and_bytes(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file() and ".git" not in f.parts]
    return len(files), sum(f.stat().st_size for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "leaderboard" / "runs"))
    ap.add_argument("--data", action="append", default=[], help="the data runs without labels were made on")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="msabench-pack-") as tmp:
        folders, packed = Path(tmp) / "folders", Path(tmp) / "packed"
        units = results.find_units(args.results)
        for unit in units:
            u = results.read_unit(unit, tuple(args.data))
            written = results.write_unit(folders, u)
            if not str(u.manifest.get("dataset_source", "")).startswith("generated"):
                (written / "labels.parquet").unlink()  # as the board commits them: the data's labels stay out
        for unit in units:
            results.write_unit(packed, results.read_unit(unit, tuple(args.data)))
        started = time.perf_counter()
        for model_dir in sorted({u.parent for u in results.find_units(packed)}):
            results.pack(model_dir)
        took = time.perf_counter() - started
        rows = []
        for name, folder in (("one folder per seed", folders), ("one pack per model", packed)):
            n, size = files_and_bytes(folder)
            rows.append((name, n, size, git_pack_bytes(folder)))
    print(f"{len(units)} units of {args.results}; packing took {took:.1f} s")
    print("| layout | files | bytes on disk | git pack (gc --aggressive) |\n|---|---|---|---|")
    for name, n, size, pack in rows:
        print(f"| {name} | {n} | {size / 1e6:.2f} MB | {pack / 1e6:.2f} MB |")
    print(f"git pack after / before: {rows[1][3] / rows[0][3]:.3f}")


if __name__ == "__main__":
    main()
