"""`msabench` command line: a thin layer over the Python API.

Every user error ends as one line on stderr and exit status 2 (argument errors included),
checked before any work; nothing is left half-written. A run whose jobs partly failed
exits 1 with one line per failed job.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from msabench import paths, protocols
from msabench.errors import MsabenchError
from msabench.version import __version__


MAX_ERROR_LINE = 1000  # characters of one error line; a 200 KB exception message is cut to this


def _clip(line: str, limit: int = MAX_ERROR_LINE) -> str:
    """`line` cut in the middle to at most `limit` characters, saying how much was cut: its start names
    where, its end often what is wrong (after a long file name or value)."""
    if len(line) <= limit:
        return line
    keep = max(0, limit - len(f" ... ({len(line)} characters cut) ... "))
    end = min(200, keep // 4)
    cut = len(line) - keep
    return f"{line[:keep - end]} ... ({cut} characters cut) ... {line[len(line) - end:] if end else ''}".rstrip()


def _data_args(args) -> None:
    if args.data and args.data_dir:
        raise MsabenchError(f"--data {args.data} and --data-dir {args.data_dir}: give one of them (--data names the "
                            "data itself, --data-dir a folder in MMSA layout to find it in)")
    if args.data_dir:
        paths.input_dir(args.data_dir, "--data-dir")




def cmd_run(args) -> int:
    from msabench import executors, report
    from msabench.isolation import Limits

    limits = Limits(timeout=args.timeout, memory_gb=args.memory, sandbox=args.sandbox)
    executor = executors.make(args.executor, args.address, args.cpus_per_job, args.gpus_per_job,
                              isolate=not args.in_process, limits=limits)
    done = executors.run(args.protocol, args.model, seeds=args.seeds, n_seeds=args.n_seeds, out=args.out,
                         data=args.data, data_dir=args.data_dir, tokenizer=args.tokenizer,
                         batch_size=args.batch_size, executor=executor, ablate=args.ablate, progress=True,
                         strict=False)
    if done.reused:
        print(f"re-used {len(done.reused)} finished result(s) in {args.out}", file=sys.stderr)
    for note in done.notes:
        print(note, file=sys.stderr)
    for p in done.protocols:
        for name in done.models:
            mine = done.of(p.name, name)
            if mine:
                print(report.summary_table(mine, p, width=None if args.wide else report.WIDTH))
                print(f"results: {Path(args.out) / p.name / name}\n")
    for i, (_, error) in enumerate(done.failures, 1):  # one line per failed job
        failed = len(done.failures)
        tail = (f" ({failed} of {done.jobs} job(s) failed{'; the other results are written' if failed < done.jobs else ''})"
                if i == failed else "")
        print(_clip(f"msabench: error: {error}", MAX_ERROR_LINE - len(tail)) + tail, file=sys.stderr)
    return 1 if done.failures else 0


def cmd_train(args) -> int:
    import time

    from msabench import runner, submission
    from msabench.data import load
    from msabench.protocols import DATASETS

    for spec in args.model:
        if not submission.is_bundled(spec):
            raise MsabenchError(f"train takes bundled models (they cache checkpoints for run); {spec} is not one: "
                                "a submission file is trained by msabench run")
    _data_args(args)
    protocols.check_seed_values(args.seeds)
    if args.dataset not in DATASETS:
        raise MsabenchError(f"unknown dataset {args.dataset!r}; known: {', '.join(DATASETS)}")
    variant = args.variant or DATASETS[args.dataset][0]
    if variant not in DATASETS[args.dataset]:
        raise MsabenchError(f"{variant!r} is not a variant of {args.dataset}; allowed: {', '.join(DATASETS[args.dataset])}")
    dataset = load(args.dataset, variant, data=args.data, data_dir=args.data_dir, tokenizer=args.tokenizer)
    from msabench import devices

    subs = [submission.load(spec) for spec in args.model]
    for sub in subs:  # every option checked against the data and this machine before any training
        sub.check(dataset.info, devices.visible_gpus())
    for sub in subs:
        for seed in args.seeds:
            runner.seed_everything(seed)
            model = sub.build(dataset.info)
            if not callable(getattr(model, "fit", None)):
                raise MsabenchError(f"model {sub.name} has no fit(train, valid, seed): nothing to train")
            t0 = time.perf_counter()
            runner.fit(model, dataset, seed)
            where = ""
            if hasattr(model, "checkpoint_path"):
                test = dataset["test"] if runner.selects_on_test(model) else None
                where = f"; checkpoint {model.checkpoint_path(dataset['train'], dataset['valid'], seed, test)[0]}"
            print(f"{sub.name} seed {seed}: ready in {time.perf_counter() - t0:.1f} s{where}")
    return 0


def cmd_leaderboard(args) -> int:
    from msabench import board, leaderboard

    where = _results(args)
    paths.output_dir(args.out, "--out")
    _check_resampling(args)
    settings = board.Settings(n_resamples=args.resamples, seed=args.bootstrap_seed, figures=not args.no_figures,
                             allow_test_selection=args.allow_test_selection)
    path = leaderboard.write(where, args.out, command=args.command_line or "", settings=settings,
                             data=_label_data(args), html=args.html)
    from msabench import plots

    extra = ("" if args.no_figures or not plots.available() else ", figures") + (", index.html" if args.html else "")
    print(f"wrote {path} (+ results.csv, results.json{extra})")
    return 0


def _label_data(args) -> tuple[str, ...]:
    """--data files or folders, checked to exist: where labels that results do not store are read from."""
    for p in args.data or ():
        if not Path(p).exists():
            raise MsabenchError(f"--data {p}: no such file or folder")
    return tuple(str(p) for p in args.data or ())


MAX_RESAMPLES = 100_000  # a resample holds an int32 per test sample: 1.9 GB for MOSEI at the cap


def _check_resampling(args) -> None:
    if args.resamples < 100:
        raise MsabenchError(f"--resamples must be >= 100 (a bootstrap needs enough resamples), got {args.resamples}")
    if args.resamples > MAX_RESAMPLES:
        raise MsabenchError(f"--resamples must be <= {MAX_RESAMPLES:,} (each resample holds a count per sample in "
                            f"memory), got {args.resamples:,}")
    if args.bootstrap_seed < 0:
        raise MsabenchError(f"--bootstrap-seed must be >= 0, got {args.bootstrap_seed}")
    if not 0 < getattr(args, "alpha", 0.05) < 1:
        raise MsabenchError(f"--alpha must be between 0 and 1, got {args.alpha:g}")


def cmd_compare(args) -> int:
    from msabench import claims, compare

    where = _results(args)
    _check_resampling(args)
    protocols.check_seed_values(args.seeds)
    paired = compare.pair(where, args.protocol, args.a, args.b, seeds=args.seeds, data=_label_data(args))
    if args.conditions:
        paired = paired.only(args.conditions)
    priors = {} if args.no_pool else compare.board_prior(where, args.protocol, _label_data(args),
                                                          args.metrics, args.alpha)
    report = compare.compare(paired, n_resamples=args.resamples, seed=args.bootstrap_seed, alpha=args.alpha,
                             metric_names=args.metrics, priors=priors)
    print(report.table(claims.scale, wide=args.wide))  # paper units: accuracies and F1 in percent
    if paired.note():
        print(paired.note())
    return 0


def cmd_runs(args) -> int:
    from msabench import runs

    paths.input_dir(args.results, "--results")
    if args.upgrade:
        for line in runs.upgrade(args.results):
            print(f"upgraded {line}" if not line.startswith("left") else line)
    if args.pack:
        for pack_file, seeds in runs.pack(args.results):
            print(f"packed {pack_file}: seeds {', '.join(map(str, seeds))}")
    if args.data and not Path(args.data).exists():
        raise MsabenchError(f"--data {args.data}: no such file or folder")
    statuses = runs.check(args.results, rerun=args.rerun, data=args.data)
    for s in statuses:
        print(s.line())
    counts = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no runs")
    return 0


def cmd_plan(args) -> int:
    from msabench import plan

    where = _results(args)
    _check_resampling(args)
    if len(args.models) not in (0, 2):
        raise MsabenchError(f"plan takes two models or none (the board's median pair), got {len(args.models)}")
    for t in args.diff:
        if not 0 < t < 1:
            raise MsabenchError(f"--diff takes differences as fractions of the metric (0.025 = 2.5 points), got {t}")
    if not 0 < args.alpha < 1:
        raise MsabenchError(f"--alpha must be in (0, 1), got {args.alpha}")
    result = plan.plan(where, args.protocol, metric=args.metric, targets=tuple(args.diff),
                       models=tuple(args.models) if args.models else None, alpha=args.alpha,
                       n_resamples=args.resamples, seed=args.bootstrap_seed, data=_label_data(args))
    print(result.table())
    return 0


def cmd_verify(args) -> int:
    from msabench import claims

    if not args.claim and not args.claims:
        raise MsabenchError("verify needs --claim \"A > B on PROTOCOL: METRIC +VALUE\" or --claims FILE.toml")
    if args.published:
        return _verify_published(args)
    _check_resampling(args)
    if args.claims:
        paths.input_file(args.claims, "--claims")
    reported = None
    if args.reported:
        if len(args.claim or []) != 1 or args.claims:
            raise MsabenchError("--reported checks exactly one --claim from published numbers")
        ma, sa, na, mb, sb, nb = args.reported
        for n in (na, nb):
            if n != int(n):
                raise MsabenchError(f"--reported: seed counts must be whole numbers, got {n:g}")
        reported = claims.check_reported(claims.Reported(ma, sa, int(na), mb, sb, int(nb)), "--reported")
    todo = [claims.parse(text, reported) for text in args.claim or []]
    if args.claims:
        todo += claims.load_file(args.claims)
    where = None
    if any(c.reported is None for c in todo):  # claims checked against stored results need them
        where = _results(args)
    verdicts = claims.verify(todo, where, n_resamples=args.resamples, seed=args.bootstrap_seed,
                             alpha=args.alpha, data=_label_data(args))  # one Holm correction over every claim
    print(claims.table(verdicts, wide=args.wide))
    return 0


def _verify_published(args) -> int:
    from msabench import claims, published

    if args.reported or args.claims:
        raise MsabenchError("--published checks --claim texts against the registry; it takes neither --reported "
                            "nor --claims")
    _check_resampling(args)
    entries = published.load(paths.input_dir(args.registry, "--registry") if args.registry else None)
    print(claims.table(published.verify(args.claim, entries, alpha=args.alpha), wide=args.wide))
    return 0


def cmd_published(args) -> int:
    from msabench import metrics, protocols, published

    entries = published.load(paths.input_dir(args.registry, "--registry") if args.registry else None, args.protocol)
    if not entries:
        print(f"the registry has no published results for {args.protocol}" if args.protocol
              else "the registry is empty")
        return 0
    for name in dict.fromkeys(e.protocol for e in entries):
        p = protocols.load(name)
        print(f"{name} (as published, not re-run; paper units: accuracies and F1 in %):\n")
        print(published.table([e for e in entries if e.protocol == name], metrics.METRICS[p.metric_kind]))
        print()
    return 0


def cmd_score(args) -> int:
    from msabench import metrics

    paths.input_file(args.csv, "score")
    print(json.dumps(metrics.score_csv(args.csv, kind=args.kind), indent=1))
    return 0


def cmd_board_pull(args) -> int:
    from msabench import pull

    n = pull.pull(args.source, args.out, args.index)
    print(f"pulled {n} files of the board's runs into {args.out}, each matching the index's sha256")
    print(f"compare against them: msabench compare MINE MODEL --protocol P --results results {args.out}")
    return 0


def cmd_board_index(args) -> int:
    from msabench import pull

    paths.input_dir(args.runs, "--runs")
    out = pull.write_index(args.runs, paths.output_file(args.out or pull.default_index(), "--out"))
    print(f"wrote {out}: {len(pull.read_index(out))} files of {args.runs}")
    return 0


def cmd_masks_export(args) -> int:
    import numpy as np

    from msabench import masking, protocols
    from msabench.data import load

    out = paths.output_file(args.out, "--out")
    _data_args(args)
    protocol = protocols.load(args.protocol)
    dataset = load(protocol.dataset, protocol.variant, data=args.data, data_dir=args.data_dir, tokenizer=args.tokenizer)
    arrays, digest = masking.export(protocol, dataset[protocol.split])
    with paths.atomic_file(out, ".npz") as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)
    print(f"wrote {len(arrays) - 1} masks for {len(dataset[protocol.split])} samples to {out}")
    print(f"masks sha256: {digest}")
    return 0


def _infer_name(path: Path) -> tuple[str, str]:
    """MMSA layout DIR/MOSI/Processed/unaligned_50.pkl -> ("mosi", "unaligned_50")."""
    parts = [p.lower() for p in path.parts]
    name = next((n for n in ("mosei", "mosi", "sims") if n in parts), None)
    return name, path.stem


def cmd_data_convert(args) -> int:
    from msabench.data import hf, mmsa

    src = paths.input_file(args.input, "data convert")
    paths.output_dir(args.out_dir, "data convert: output folder")
    out_dir = Path(args.out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise MsabenchError(f"data convert: output folder {out_dir} is not empty; refusing to overwrite it")
    guess_name, guess_variant = _infer_name(src.resolve())
    name = args.dataset or guess_name
    if name is None:
        raise MsabenchError(f"cannot tell which dataset {src} holds; pass --dataset mosi|mosei|sims")
    dataset = mmsa.load(src, name, args.variant or guess_variant)
    if dataset.nonfinite_replaced:
        print(f"note: {dataset.nonfinite_replaced} non-finite feature values were set to 0", file=sys.stderr)
    hf.save(dataset, args.out_dir)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items())
    print(f"wrote {dataset.name} {dataset.variant} ({sizes}) to {args.out_dir}")
    print(f"dataset sha256: {dataset.fingerprint}")
    return 0


def cmd_data_synth(args) -> int:
    import pickle

    from msabench.data import synth

    out = paths.output_file(args.out, "--out")
    if args.seed < 0:
        raise MsabenchError(f"--seed must be >= 0, got {args.seed}")
    raw = synth.make_raw(seed=args.seed, **synth.VARIANTS[args.variant], **synth.GENERATED[args.dataset])
    with paths.atomic_file(out, ".pkl") as tmp, tmp.open("wb") as f:
        pickle.dump(raw, f, protocol=4)
    print(f"wrote {args.dataset} (seed {args.seed}) in MMSA {args.variant} format to {out}")
    return 0


def cmd_data_embed(args) -> int:
    from msabench.data import embed

    if args.batch_size < 1 or args.max_tokens < 3:
        raise MsabenchError(f"--batch-size must be >= 1 and --max-tokens >= 3, got {args.batch_size} and {args.max_tokens}")
    shapes = embed.embed(args.input, args.out, args.encoder, replace=args.replace, max_tokens=args.max_tokens,
                         batch_size=args.batch_size)
    sizes = ", ".join(f"{k} {list(v)}" for k, v in shapes.items())
    key = "'text_states' (read as variant 'states')" if "table" in shapes else "'text'"
    print(f"wrote {args.out}: token features {key} from {args.encoder} ({sizes})")
    return 0


def cmd_protocols(args) -> int:
    from tabulate import tabulate

    from msabench import protocols

    rows = []
    for name in protocols.available():
        p = protocols.load(name)
        rows.append([p.name, f"{p.dataset} {p.variant}", p.kind, len(p.conditions), ",".join(map(str, p.seeds)),
                     p.mask_convention, ",".join(map(str, p.mask_seeds)) or ("-" if p.kind == "inter" else "= seeds"),
                     p.primary_metric, p.fingerprint[:12]])
    print(tabulate(rows, headers=["protocol", "data", "kind", "conditions", "seeds", "masks", "mask seeds", "primary",
                                  "fingerprint"]))
    return 0


def cmd_datasets(args) -> int:
    from tabulate import tabulate

    from msabench.data import registry

    rows = []
    for d in registry.DATASETS.values():
        for i, v in enumerate(d.variants):
            sizes = "/".join(map(str, d.sizes)) if d.sizes else "the file's"
            lengths = "/".join(map(str, v.lengths)) if v.lengths else "-"
            head = [d.name, d.kind, f"[{d.labels[0]:g}, {d.labels[1]:g}]", sizes] if i == 0 else ["", "", "", ""]
            rows.append([*head, v.name + (" (default)" if i == 0 else ""), lengths, v.carries])
    print(tabulate(rows, headers=["dataset", "metrics", "labels", "train/valid/test", "variant", "T/A/V steps",
                                  "what it carries"], tablefmt="github"))
    return 0


def cmd_init(args) -> int:
    from msabench.protocols import shipped

    out = paths.output_file(args.file, "init")
    if out.suffix != ".py":
        raise MsabenchError(f"init {out}: a submission is a Python file; give a name ending in .py")
    if out.exists():
        raise MsabenchError(f"init {out}: the file exists; msabench init never overwrites a file")
    source = (shipped("submissions") / "example.py").read_bytes()
    with paths.atomic_file(out, ".py") as tmp:
        tmp.write_bytes(source)
    print(f"wrote the example submission to {out}; try: msabench run --protocol synth-intra --model {out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: `msabench: error: run: ... (see msabench run --help)`."""

    def error(self, message: str):
        command = self.prog.removeprefix("msabench").strip()
        where = f"{command}: " if command else ""
        self.exit(2, _clip(f"msabench: error: {where}{message} (see {self.prog} --help)") + "\n")


# ----------------------------------------------------------------------------- the parser, one function per command


def _data_args_to(q) -> None:
    q.add_argument("--data", help="MMSA .pkl file, msabench/HF save_to_disk folder, hub:OWNER/NAME, or an "
                                  "utterance-level feature table (.npz/.parquet, e.g. mosi-utterance.npz)")
    q.add_argument("--data-dir", help="folder in MMSA layout (DIR/MOSI/Processed/...); default $MSABENCH_DATA")
    q.add_argument("--tokenizer", help="feature tables read as tokens: a local BERT tokenizer folder instead of "
                                       "the packaged MiniLM's (minilm)")


def _label_data_to(q) -> None:
    q.add_argument("--data", action="append", metavar="FILE",
                   help="the data file results on user-supplied data were made on: their labels are read from it "
                        "when not stored with them (repeatable)")


def _results(args):
    """--results: one folder, or several read as one (a user's runs with leaderboard/runs), each checked."""
    for folder in args.results:
        paths.input_dir(folder, "--results")
    return args.results[0] if len(args.results) == 1 else tuple(args.results)


def _results_to(q) -> None:
    q.add_argument("--results", nargs="+", default=["results"], metavar="DIR",
                   help="results folder(s) written by msabench run; several are read as one (e.g. yours and "
                        "leaderboard/runs), a unit in two of them must be the same run")


def _stats_args_to(q) -> None:
    _results_to(q)
    q.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    q.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the resampling (default 0)")
    _label_data_to(q)


def _add_run(sub) -> None:
    r = sub.add_parser("run", help="evaluate models under protocols")
    r.add_argument("--protocol", nargs="+", action="extend", required=True,
                   help="shipped protocol name(s) or TOML file(s) (repeatable)")
    r.add_argument("--model", nargs="+", action="extend", required=True,
                   help="submission file(s) or bundled model name(s) (repeatable)")
    r.add_argument("--seeds", nargs="+", type=int,
                   help="which seeds to run: the protocol's own (a subset) or, where its seeds are consecutive, "
                        "the integers after them (1111..1113 -> 1114, 1115, ...)")
    r.add_argument("--n-seeds", type=int, metavar="N",
                   help="run each protocol's first N seeds: its own, then the consecutive integers after the last "
                        "(not with --seeds)")
    r.add_argument("--out", default="results", help="results folder (default: results)")
    r.add_argument("--wide", action="store_true", help="print every metric (default: those that fit 100 columns)")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--executor", choices=["serial", "ray"], default="serial")
    r.add_argument("--address", help="Ray cluster to join (auto or HOST:PORT); default: start a local one")
    r.add_argument("--cpus-per-job", type=float, default=None,
                   help="CPUs (torch threads) per (model, seed) job; default: all of this machine's serially, 1 under Ray")
    r.add_argument("--gpus-per-job", type=float, help="Ray GPUs per job (default 0); fractions pack jobs on a GPU")
    r.add_argument("--sandbox", action="store_true",
                   help="run each submission file's worker under bubblewrap: it sees the Python environment, the "
                        "file and its label-free inputs only, read-only; no network, data file, results or home")
    r.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="a submission's import, build, fit and each predict batch may take at most this long")
    r.add_argument("--memory", type=float, metavar="GB", help="a submission's worker may allocate at most this much "
                                                               "(RLIMIT_DATA)")
    r.add_argument("--in-process", action="store_true",
                   help="serial executor: run file submissions in this process (for a debugger) instead of one "
                        "fresh process per job")
    r.add_argument("--ablate", action="store_true",
                   help="also run each bundled model with each of its components switched off")
    _data_args_to(r)
    r.set_defaults(func=cmd_run)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train models (checkpoints are cached; run re-uses them)")
    t.add_argument("--model", nargs="+", required=True, help="bundled model name(s), NAME:key=value options")
    t.add_argument("--dataset", default="synth-mosi", help="synth-mosi, synth-sims, mosi, mosei, sims or mosi-utt")
    t.add_argument("--variant", help="default: the dataset's first variant (aligned_50 for MOSI/MOSEI)")
    t.add_argument("--seeds", nargs="+", type=int, default=[1111, 1112, 1113])
    _data_args_to(t)
    t.set_defaults(func=cmd_train)


def _add_score(sub) -> None:
    s = sub.add_parser("score", help="score a CSV with prediction and label columns")
    s.add_argument("csv")
    s.add_argument("--kind", choices=["mosi", "sims"], default="mosi")
    s.set_defaults(func=cmd_score)


def _add_masks(sub) -> None:
    m = sub.add_parser("masks", help="protocol masks")
    msub = m.add_subparsers(dest="masks_command", required=True)
    e = msub.add_parser("export", help="write every mask of a protocol to an .npz file")
    e.add_argument("--protocol", required=True)
    e.add_argument("--out", required=True)
    _data_args_to(e)
    e.set_defaults(func=cmd_masks_export)


def _add_board(sub) -> None:
    b = sub.add_parser("board", help="the committed board's runs: fetch them verified, or index them")
    bsub = b.add_subparsers(dest="board_command", required=True)
    p = bsub.add_parser("pull", help="fetch the board's runs, each file checked against the shipped sha256 index")
    p.add_argument("--from", dest="source", required=True,
                   help="where the runs are: a folder (a checkout's leaderboard/runs) or its http(s) address")
    p.add_argument("--out", default="board-runs", help="a new folder for them (default: board-runs)")
    p.add_argument("--index", help="another index file (default: the one inside this msabench)")
    p.set_defaults(func=cmd_board_pull)
    i = bsub.add_parser("index", help="write the sha256 index of a runs folder (make leaderboard does)")
    i.add_argument("--runs", default="leaderboard/runs")
    i.add_argument("--out", help="default: leaderboard/index/runs.sha256 (shipped in the package)")
    i.set_defaults(func=cmd_board_index)


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="data files")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("convert", help="convert an MMSA pickle to a Hugging Face save_to_disk folder")
    c.add_argument("input")
    c.add_argument("out_dir")
    c.add_argument("--dataset", choices=["mosi", "mosei", "sims"])
    c.add_argument("--variant", help="default: the file's stem (aligned_50, unaligned_50, unaligned_39)")
    c.set_defaults(func=cmd_data_convert)
    y = dsub.add_parser("synth", help="write the synthetic dataset as an MMSA pickle")
    y.add_argument("--out", required=True)
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--dataset", choices=["synth-mosi", "synth-sims"], default="synth-mosi",
                   help="synth-sims: labelled as CH-SIMS ([-1, 1], with T/A/V labels, CH-SIMS's split sizes)")
    y.add_argument("--variant", choices=["aligned_50", "aligned_50_features", "unaligned_50"], default="aligned_50",
                   help="aligned_50_features: with MMSA's 768-d text features (~340 MB); unaligned_50: MOSI's real "
                        "unaligned shapes with 768-d text features (~440 MB)")
    y.set_defaults(func=cmd_data_synth)

    em = dsub.add_parser("embed", help="add pretrained token features ([N, L, H]) to an MMSA-layout pickle "
                                          "('text') or a feature table ('text_states')")
    em.add_argument("input")
    em.add_argument("--out", required=True, help="the new file to write")
    em.add_argument("--encoder", default="minilm", help="minilm (the packaged all-MiniLM-L6-v2) or a local folder")
    em.add_argument("--replace", action="store_true", help="compute the features again where the input has them")
    em.add_argument("--max-tokens", type=int, default=50, help="WordPiece ids per transcript (tables; MMSA splits without ids)")
    em.add_argument("--batch-size", type=int, default=64)
    em.set_defaults(func=cmd_data_embed)


def _add_leaderboard(sub) -> None:
    lb = sub.add_parser("leaderboard", help="write leaderboard tables from stored results")
    _results_to(lb)
    lb.add_argument("--out", default="leaderboard")
    lb.add_argument("--command-line", help="the command(s) that produced the results, quoted in the README")
    lb.add_argument("--allow-test-selection", action="store_true",
                    help="show results whose checkpoints were chosen on the test split (selection=test-per-metric), marked")
    lb.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples for the vs-best tests")
    lb.add_argument("--bootstrap-seed", type=int, default=0)
    lb.add_argument("--no-figures", action="store_true", help="skip the figures (PNG, SVG, PDF)")
    lb.add_argument("--html", action="store_true",
                    help="also write index.html: the board as one static page (sortable tables, curves to toggle)")
    _label_data_to(lb)
    lb.set_defaults(func=cmd_leaderboard)


def _add_compare(sub) -> None:
    cp = sub.add_parser("compare", help="paired significance tests of model A against model B")
    cp.add_argument("a", help="model A (its name in the results folder)")
    cp.add_argument("b", help="model B")
    cp.add_argument("--protocol", required=True)
    cp.add_argument("--seeds", nargs="+", type=int, help="a subset of the shared seeds")
    cp.add_argument("--conditions", nargs="+", help="a subset of the protocol's conditions")
    cp.add_argument("--metrics", nargs="+", help="a subset of the metrics (Holm runs over those shown)")
    cp.add_argument("--alpha", type=float, default=0.05)
    cp.add_argument("--no-pool", action="store_true",
                    help="use the pair's own seeds only, not the retraining variance pooled over the folder's models")
    cp.add_argument("--wide", action="store_true",
                    help="also MAE and Corr to 4 decimals, coverage, raw p and McNemar / sign-flip p per row")
    _stats_args_to(cp)
    cp.set_defaults(func=cmd_compare)


def _add_runs(sub) -> None:
    ru = sub.add_parser("runs", help="stored runs against today's code: current, code changed, stale")
    ru.add_argument("--results", default="results", help="results folder written by msabench run")
    ru.add_argument("--check", action="store_true", help="compare every stored run with today's code (the default)")
    ru.add_argument("--rerun", action="store_true",
                    help="re-run one seed of each (protocol, model) whose code changed and compare predictions")
    ru.add_argument("--upgrade", action="store_true",
                    help="rewrite manifests made before model identities to today's key (their old digest kept)")
    ru.add_argument("--pack", action="store_true",
                    help="fold each model's seed folders into one zstd Parquet (PROTOCOL/MODEL/runs.parquet); "
                         "labels kept for generated data only")
    ru.add_argument("--data", help="the data file runs on user-supplied data were made on (for --rerun)")
    ru.set_defaults(func=cmd_runs)


def _add_plan(sub) -> None:
    pl = sub.add_parser("plan", help="how many seeds a comparison needs for a target difference at 80%% power")
    pl.add_argument("models", nargs="*", help="two models (default: the board's median pair)")
    pl.add_argument("--protocol", required=True)
    pl.add_argument("--metric", help="default: the protocol's primary metric")
    pl.add_argument("--diff", nargs="+", type=float, default=[0.01, 0.025],
                    help="target differences as fractions (default: 0.01 0.025, i.e. +1 and +2.5 points)")
    pl.add_argument("--alpha", type=float, default=0.05)
    _stats_args_to(pl)
    pl.set_defaults(func=cmd_plan)


def _add_verify(sub) -> None:
    v = sub.add_parser("verify", help="check a claimed improvement against stored results or published numbers")
    v.add_argument("--claim", action="append", help='"A > B on PROTOCOL: METRIC +VALUE" (repeatable)')
    v.add_argument("--claims", help="TOML file of [[claim]] tables")
    v.add_argument("--reported", nargs=6, type=float, metavar=("MEAN_A", "STD_A", "N_A", "MEAN_B", "STD_B", "N_B"),
                   help="check the claim from published mean, std and seed count of both models only")
    v.add_argument("--published", action="store_true",
                   help="check the claims against the registry of published results (leaderboard/published)")
    v.add_argument("--registry", help="another registry folder (with --published)")
    v.add_argument("--alpha", type=float, default=0.05)
    v.add_argument("--wide", action="store_true",
                   help="one table with every column: claim, source, claimed value and note (default: a table that "
                        "fits 100 columns, the claims and notes on a line per row under it)")
    _stats_args_to(v)
    v.set_defaults(func=cmd_verify)


def _add_published(sub) -> None:
    pb = sub.add_parser("published", help="list the published results of the registry (as reported, not re-run)")
    pb.add_argument("--protocol", help="only this protocol")
    pb.add_argument("--registry", help="a registry folder (default: the shipped leaderboard/published)")
    pb.set_defaults(func=cmd_published)


def _add_datasets(sub) -> None:
    ds = sub.add_parser("datasets", help="the datasets protocols may name: metrics, labels, splits, variants")
    ds.set_defaults(func=cmd_datasets)


def _add_protocols(sub) -> None:
    pr = sub.add_parser("protocols", help="list shipped protocols with their fingerprints")
    pr.set_defaults(func=cmd_protocols)


def _add_init(sub) -> None:
    i = sub.add_parser("init", help="write the example submission to a new file, to start from")
    i.add_argument("file", nargs="?", default="mymodel.py", help="default: mymodel.py")
    i.set_defaults(func=cmd_init)


COMMANDS = (_add_run, _add_train, _add_score, _add_masks, _add_data, _add_leaderboard, _add_board, _add_compare, _add_runs, _add_plan, _add_verify, _add_published, _add_datasets, _add_protocols, _add_init)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="msabench", description="Benchmark MSA models under missing modalities.")
    p.add_argument("--version", action="version", version=f"msabench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:  # named with its command, not as the top-level parser's error
        command = " ".join(filter(None, [args.command, getattr(args, "masks_command", None),
                                         getattr(args, "data_command", None)]))
        p.exit(2, _clip(f"msabench: error: {command}: unrecognized argument(s): {' '.join(extra)} "
                        f"(see msabench {command} --help)") + "\n")
    before = _finished(args)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except MsabenchError as e:
        print(_clip(f"msabench: error: {e}"), file=sys.stderr)
        return 2
    except OSError as e:  # disk full, a file vanishing mid-run: still one line, and what was finished is kept
        where = f"{e.filename}: " if e.filename else ""
        print(_clip(f"msabench: error: {where}{e.strerror or e}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(_interrupted(args, before), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt: what finished is kept and said."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _finished(args) -> set[Path]:
    """The finished result folders under a run's --out (empty for other commands)."""
    from msabench import results

    out = getattr(args, "out", None)
    if getattr(args, "command", None) != "run" or not out:
        return set()
    try:  # the run itself checks --out and says what is wrong with it; this only counts
        return set(results.find_units(out)) if Path(out).is_dir() else set()
    except OSError:
        return set()


def _interrupted(args, before: set[Path]) -> str:
    if getattr(args, "command", None) != "run":
        return "msabench: interrupted; finished results are kept, re-run to complete the rest"
    done = _finished(args) - before
    return (f"msabench: interrupted; {len(done)} result(s) finished in this run are kept in {args.out}: "
            + (", ".join(f"{f.parent.parent.name}/{f.parent.name}/{f.name}" for f in sorted(done)[:6])
               + (" ..." if len(done) > 6 else "") if done else "none")
            + "; re-run the same command to complete the rest (finished seeds are re-used)")


if __name__ == "__main__":
    sys.exit(main())
