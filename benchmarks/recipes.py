"""The reference methods trained with msabench's shared recipe and with their authors' recipe, side by side.

For each method (lnln, almt, cenet, tetfn) on one protocol and its seeds:
- `recipe=msabench` (the default): the shared recipe, checkpoint chosen on validation MAE;
- `recipe=authors`: the optimiser, learning rates, schedule, epochs, batch size and loss of the
  authors' released code (each module's `AUTHORS_RECIPE`), checkpoint still chosen on validation;
- for LNLN also its authors' checkpoint choice on TEST (`selection=test-per-metric`, the protocol
  flaw reproduced to measure it): each metric from the epoch where it was best on the test split
  at r = 0.5, F1 read at its Acc-2's checkpoint, as LNLN's core/utils.py. It is the same
  authors'-recipe training as the validation-selected row (one training per seed serves both).

Per method it prints each metric's mean over conditions (mean ± sd over seeds) for every variant,
and the paired difference authors - msabench with its 95% interval and p (`msabench compare`'s
test: item resamples plus the retraining variance of the seed-by-seed differences), on the same seeds
as the means; with one seed the retraining variance is the --out folder's pool, as compare's, or
there is no test. Runs land in
--out (LNLN's test-selected ones in --test-out, never on the board) and are reused when current, so
a second call only prints.

Usage: python benchmarks/recipes.py [--protocol mosi-utt-intra] [--methods lnln almt cenet tetfn]
                                    [--out leaderboard/runs] [--data FILE] [--executor ray]
                                    [--test-out results/selection-on-test]
On mosi-utt protocols the text is read with the packaged MiniLM (text_encoder=minilm), as on the
board; the real utterance table is ../shared/data/mosi-utterance.npz unless --data says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msabench import compare, executors, leaderboard, protocols, submission  # noqa: E402
from msabench.errors import MsabenchError  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "mosi-utterance.npz"
METRICS = {"mosi": ["Non0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr"],
           "sims": ["Mult_acc_2", "F1_score", "Mult_acc_5", "MAE", "Corr"]}
# LNLN's test selection: the metrics with a checkpoint of their own (F1 is read at its Acc-2's)
OWN_CHECKPOINT = {"Non0_F1_score": "Non0_acc_2", "F1_score": "Mult_acc_2"}


def spec(method: str, protocol: protocols.Protocol, **options: str) -> str:
    opts = dict(options)
    if protocol.dataset == "mosi-utt":
        opts["text_encoder"] = "minilm"
    return method + (":" + ",".join(f"{k}={v}" for k, v in sorted(opts.items())) if opts else "")


def fmt(values: list[float], pct: bool) -> str:
    k = 100.0 if pct else 1.0
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else float("nan")
    return f"{k * mean:.2f} ± {k * sd:.2f}" if pct else f"{mean:.4f} ± {sd:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="mosi-utt-intra")
    ap.add_argument("--methods", nargs="+", default=["lnln", "almt", "cenet", "tetfn"])
    ap.add_argument("--data", help="the data file (default: the real utterance table for mosi-utt protocols)")
    ap.add_argument("--out", default=str(ROOT / "leaderboard" / "runs"), help="the recipes' rows (the board's runs)")
    ap.add_argument("--test-out", default=str(ROOT / "results" / "selection-on-test"),
                    help="LNLN's test-selected rows: never on the board (they chose their checkpoints on test)")
    ap.add_argument("--executor", default="ray", choices=["ray", "serial"])
    ap.add_argument("--cpus-per-job", type=float, default=1.0)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, nargs="+", help="a subset of the protocol's seeds (default: all)")
    ap.add_argument("--lnln-select", nargs="+", help="metrics LNLN's test selection keeps a checkpoint for "
                    "(default: every metric of the table with one of its own; each is a prediction pass per seed)")
    args = ap.parse_args()
    protocol = protocols.load(args.protocol)
    names = METRICS[protocol.metric_kind]
    data = args.data or (str(REAL) if protocol.dataset == "mosi-utt" else None)
    executor = executors.make(args.executor, cpus_per_job=args.cpus_per_job)

    def test_selected(metric: str) -> str:
        return spec("lnln", protocol, recipe="authors", selection="test-per-metric", selection_metric=metric)

    own = args.lnln_select or list(dict.fromkeys(OWN_CHECKPOINT.get(m, m) for m in names))
    # first the trainings: LNLN's test-selected run saves its validation-selected checkpoint too, so it goes
    # before the plain authors' row; the rest then only load checkpoints or train what is left
    lnln = "lnln" in args.methods
    if lnln:
        executors.run(protocol, test_selected(own[0]), out=args.test_out, data=data, executor=executor,
                      seeds=args.seeds)
    runs = executors.run(protocol, [spec(m, protocol, **extra) for extra in ({"recipe": "authors"}, {})
                                    for m in args.methods], out=args.out, data=data, executor=executor,
                         seeds=args.seeds)
    units = {}
    for u in runs.units:
        units.setdefault(u.model, []).append(u)
    if lnln:
        for u in executors.run(protocol, [test_selected(m) for m in own], out=args.test_out, data=data,
                               executor=executor, seeds=args.seeds).units:
            units.setdefault(u.model, []).append(u)

    seeds = sorted({u.seed for u in runs.units})
    print(f"{protocol.name}, seeds {', '.join(map(str, seeds))}: each metric's mean over conditions (mean ± sd over "
          "seeds; accuracies and F1 in %); difference = authors' recipe minus msabench's, paired test, 95% CI\n")
    for method in args.methods:
        shared, authors = spec(method, protocol), spec(method, protocol, recipe="authors")
        shared_name, authors_name = name_of(shared), name_of(authors)
        head = ["metric", "recipe=msabench", "recipe=authors", "difference [95% CI]", "p"]
        if method == "lnln":
            head.insert(3, "authors + test selection")
        print(f"### {method}\n")
        # the test on the seeds the means are over; one seed borrows its retraining variance from the
        # folder's pool (compare's rule), and with no pool there is no test
        paired = compare.pair(args.out, protocol.name, authors_name, shared_name, seeds=seeds,
                              data=(data,) if data else ())
        priors = compare.board_prior(args.out, protocol.name, (data,) if data else (), names) if len(seeds) < 2 else {}
        try:
            report = compare.compare(paired, n_resamples=args.resamples, metric_names=names, priors=priors)
        except MsabenchError as e:
            report = None
            print(f"(no paired test: {e})\n")
        if report is not None and report.pool:
            print(f"(one seed: the retraining variance {report.pool})\n")
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for m in names:
            pct = leaderboard.pct(m)
            k = 100.0 if pct else 1.0
            cells = [m, fmt(values(units[shared_name], m), pct), fmt(values(units[authors_name], m), pct)]
            if method == "lnln":
                chosen = name_of(test_selected(OWN_CHECKPOINT.get(m, m)))
                cells.append(fmt(values(units[chosen], m), pct) if chosen in units else "not run")
            if report is None:
                cells += ["no test", ""]
            else:
                r = report.row(m).result
                cells += [f"{k * r.diff:+.2f} [{k * r.ci_diff[0]:+.2f}, {k * r.ci_diff[1]:+.2f}]" if pct else
                          f"{r.diff:+.4f} [{r.ci_diff[0]:+.4f}, {r.ci_diff[1]:+.4f}]", compare.format_p(r.p)]
            print("| " + " | ".join(cells) + " |")
        print()


def name_of(model_spec: str) -> str:
    return submission.load(model_spec).name


def values(units, metric: str) -> list[float]:
    return [u.metrics["aggregate"]["mean"][metric] for u in sorted(units, key=lambda u: u.seed)]


if __name__ == "__main__":
    main()
