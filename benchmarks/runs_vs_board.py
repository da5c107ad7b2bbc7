"""Each unit of a results folder next to the committed leaderboard's row for the same protocol, model and
seed (leaderboard/results.json): whether the code is the same (submission hash) and how far the mean over
conditions moved. Used to see what a re-run on another machine, or under new code, changed.

Usage: python benchmarks/runs_vs_board.py [--results leaderboard/runs] [--board leaderboard/results.json]
                                          [--data ../shared/data/mosi-utterance.npz]
(--data: the user's data file, whose labels the committed real-data units do not carry; without it those
units are skipped and counted.)
"""

import argparse
import json
import math
from pathlib import Path

from msabench import results

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "leaderboard" / "runs"))
    ap.add_argument("--board", default=str(ROOT / "leaderboard" / "results.json"))
    ap.add_argument("--metric", default="Non0_acc_2")
    ap.add_argument("--data", nargs="*", default=[], help="data file(s) the real-data units were made on")
    args = ap.parse_args()
    board = {(r["protocol"], r["model"], r["seed"]): r for r in json.loads(Path(args.board).read_text())
             if r["condition"] == "<mean>"}
    counts = {"equal": 0, "differ": 0, "new": 0, "no data": 0}
    print(f"{'protocol':<14} {'model':<34} {'seed':>4}  code       board {args.metric:<11} here        MAE board -> here")
    for folder in results.find_units(args.results):
        if not results.has_labels(folder) and not args.data:
            counts["no data"] += 1
            continue
        unit = results.read_unit(folder, data=tuple(args.data))
        here = unit.metrics["aggregate"]["mean"]
        row = board.get((unit.protocol, unit.model, unit.seed))
        if row is None:
            counts["new"] += 1
            print(f"{unit.protocol:<14} {unit.model:<34} {unit.seed:>4}  (not in the board)      {here[args.metric]:.4f}")
            continue
        equal = all(row[k] == v or (row[k] is None and math.isnan(v)) for k, v in here.items())
        counts["equal" if equal else "differ"] += 1
        code = "same" if row["submission_sha256"] == unit.manifest["submission_sha256"] else "other"
        print(f"{unit.protocol:<14} {unit.model:<34} {unit.seed:>4}  {code:<6} {row[args.metric]:>10.4f} -> "
              f"{here[args.metric]:.4f}  {'EQUAL' if equal else f'{here[args.metric] - row[args.metric]:+.4f}':>7}"
              f"   {row['MAE']:.4f} -> {here['MAE']:.4f}")
    print(f"units: {counts['equal']} equal to the board, {counts['differ']} different, {counts['new']} not in it, "
          f"{counts['no data']} skipped (real-data units: pass --data)")


if __name__ == "__main__":
    main()
