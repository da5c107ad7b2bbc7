"""Running an evaluation grid: serially in this process, or fanned out on a Ray cluster.

The grid is every (model, seed) of the requested models and protocols. A job fits one
model for one seed once and evaluates it under every protocol that shares a dataset,
so training is never repeated. Both executors run the same function on the same
inputs, so their per-sample predictions are bit-identical; the driver writes each
finished unit atomically as it arrives, so an interrupted grid keeps what finished
and a re-run does only what is missing.

Ingestion and scoring are split (msabench.runner): a job's host (this process for the
serial executor, a Ray worker under Ray) is given the dataset as models see it, the
evaluation split without labels, and returns predictions; the driver scores them with
its own metrics and writes every file. A submission file's code runs in a worker process
of its own under that host (msabench.isolation), never in the host or the driver, so a
submission that exits, crashes, patches msabench or walks the garbage collector fails or
fools only itself. Bundled models, msabench's own code, run in the host.

What a job is given: the serial executor gives each job every CPU of this process
(or `cpus_per_job`) and the GPUs it sees; Ray gives `cpus_per_job` CPUs (torch's
thread count is set to it) and the GPUs it reserved with `gpus_per_job`. Requests
that cannot be met fail before anything runs.

`run` is the notebook entry point for one protocol and one model; this module owns it
so that imports flow one way (executors -> runner).
"""

from __future__ import annotations

import hashlib
import math
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from msabench import devices, ingestion, isolation, masking, paths, results, runner, submission
from msabench import progress as progress_mod
from msabench import protocols as protocols_mod
from msabench.data import Dataset, Split, registry
from msabench.data import load as load_data
from msabench.errors import MsabenchError
from msabench.isolation import NO_LIMITS, Limits
from msabench.protocols import Protocol

EXECUTORS = ("serial", "ray")


@dataclass(frozen=True)
class Job:
    """One model and seed, evaluated under `protocols` (all on the dataset `dataset_key`)."""

    model: str  # as the user wrote it: a bundled name (with options) or a file path
    seed: int
    protocols: tuple[Protocol, ...]
    dataset_key: tuple[str, str]
    batch_size: int
    source: bytes | None = None  # a file submission's bytes: remote workers need no shared disk
    threads: int | None = None  # CPU threads torch uses in the job (None: as the worker has it)
    masks: tuple[str, ...] = ()  # the masks fingerprint of each protocol, computed by the driver
    limits: Limits = NO_LIMITS  # what a submission file's worker may use
    name: str = ""  # the model's name (its results folder)
    fit_test: bool = False  # a bundled model that selects its checkpoints on the test split
    data_fingerprint: str = ""  # of the dataset: names the train/valid file a worker reads

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed} on {', '.join(p.name for p in self.protocols)}"


@dataclass
class GridReport:
    units: list[results.UnitResult] = field(default_factory=list)
    reused: list[results.UnitResult] = field(default_factory=list)
    failures: list[tuple[Job, str]] = field(default_factory=list)
    jobs: int = 0  # jobs run (finished or failed)
    names: dict[str, str] = field(default_factory=dict)  # model spec -> the name its results take


def execute(job: Job, inputs: Dataset, test: Split | None = None, in_process: bool = False
            ) -> list[runner.Predictions]:
    """The ingestion half of one job, on its host (this process, or a Ray worker).

    `inputs`: the dataset as models see it (evaluation splits without labels); `test`: the
    labelled test split, only for a bundled model that selects on it. `in_process`: a file
    submission in this process too (--in-process: a debugger's view, no isolation).
    """
    if job.source is None or in_process:  # a bundled model (msabench's own code), in this process
        host = ingestion.Local(submission.load(job.model))
        try:
            with devices.threads(job.threads):
                return runner.ingest(host, inputs, list(job.protocols), job.seed, job.batch_size, test=test,
                                     label=job.name)
        finally:
            host.close()
    path = Path(job.model).resolve()
    sub = submission.Submission(name=job.name, path=path, sha256=hashlib.sha256(job.source).hexdigest(), factory=None)
    host = ingestion.Remote(sub, job.source, job.limits, f"{path}, seed {job.seed}", inputs["train"], inputs["valid"],
                            job.threads, key=job.data_fingerprint or None)
    try:
        return runner.ingest(host, inputs, list(job.protocols), job.seed, job.batch_size, label=job.name)
    finally:
        host.close()


def protocol_seeds(protocol: Protocol, seeds: list[int] | None = None, n_seeds: int | None = None
                   ) -> tuple[int, ...]:
    """The seeds a grid runs `protocol` for: all it lists (neither given); those of `seeds` it takes, listed
    or past them under its rule (`Protocol.allows_seed`); or its first `n_seeds` under its rule."""
    if n_seeds is not None:
        if seeds is not None:
            raise MsabenchError("give seeds or n_seeds, not both")
        return protocol.extended_seeds(n_seeds)
    if seeds is None:
        return protocol.seeds
    return tuple(s for s in dict.fromkeys(seeds) if protocol.allows_seed(s))


def plan(protocols: list[Protocol], models: list[str], datasets: dict[tuple[str, str], Dataset], out: str | Path,
         seeds: list[int] | None = None, batch_size: int = 64, threads: int | None = None, isolate: bool = True,
         limits: Limits = NO_LIMITS, n_seeds: int | None = None) -> tuple[list[Job], list[results.UnitResult]]:
    """The jobs still to run, and the finished units whose fingerprints match (re-used as they are).

    `seeds`, `n_seeds`: which seeds of each protocol (`protocol_seeds`). `isolate`: learn file
    submissions' names in the worker process (`submission.probe`).
    """
    jobs, reused = [], []
    per_protocol = {p.name: protocol_seeds(p, seeds, n_seeds) for p in protocols}
    for spec in models:
        sub = (submission.probe if isolate else submission.load)(spec)
        source = None if submission.is_bundled(spec) else sub.path.read_bytes()
        for key, dataset in datasets.items():
            labels: dict[str, dict] = {}  # split -> labels by id, made once for the units re-used
            group = [p for p in protocols if (p.dataset, p.variant) == key]
            wanted = sorted({s for p in group for s in per_protocol[p.name]})
            for seed in wanted:
                todo = []
                for p in group:
                    if seed not in per_protocol[p.name]:
                        continue
                    split = dataset[p.split]
                    folder = results.unit_dir(out, p.name, sub.name, seed)
                    fp = masking.fingerprint(p, split, seed)
                    if results.is_current(folder, runner.identity(p, dataset, sub, seed, fp)):
                        # the same data (fingerprint): its labels serve a unit shared without them
                        if p.split not in labels:
                            labels[p.split] = results.labels_by_id(split)
                        reused.append(results.read_unit(folder, labels_by_id=labels[p.split], protocol=p))
                    else:
                        todo.append((p, fp))
                if todo:
                    jobs.append(Job(spec, seed, tuple(p for p, _ in todo), key, batch_size, source, threads,
                                    masks=tuple(fp for _, fp in todo), limits=limits, name=sub.name,
                                    fit_test=sub.selects_on_test, data_fingerprint=dataset.fingerprint))
    return jobs, reused


class SerialExecutor:
    """One job after another, each on all its CPUs (or `cpus_per_job`).

    Jobs of file submissions run in the worker process of msabench.isolation (`isolate=False`:
    in this one, e.g. to step through a submission in a debugger); bundled models run here.
    """

    def __init__(self, cpus_per_job: float | None = None, isolate: bool = True, limits: Limits = NO_LIMITS):
        available = devices.available_cpus()
        if cpus_per_job is not None and not (math.isfinite(cpus_per_job) and cpus_per_job >= 1
                                             and cpus_per_job == int(cpus_per_job)):
            raise MsabenchError(f"--cpus-per-job must be a whole number >= 1 with the serial executor, got {cpus_per_job:g}")
        if cpus_per_job is not None and cpus_per_job > available:
            raise MsabenchError(f"--cpus-per-job {cpus_per_job:g}: this process may use only {available} CPU(s)")
        if not isolate and limits != NO_LIMITS:
            raise MsabenchError("--sandbox, --timeout and --memory apply to the worker process; --in-process has none")
        self.threads = int(cpus_per_job) if cpus_per_job is not None else available
        self.isolate = isolate
        self.limits = limits.check()
        isolation.configure(self.limits)  # files are probed under the same limits

    def gpus_per_job(self) -> int:
        return devices.visible_gpus()

    def open(self, jobs: list[Job]) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, jobs: list[Job], inputs: dict, tests: dict, done) -> None:
        for job in jobs:
            try:
                preds = execute(job, inputs[job.dataset_key], tests.get(job.dataset_key) if job.fit_test else None,
                                in_process=not self.isolate)
            except MsabenchError as e:
                done(job, None, str(e))
                continue
            done(job, preds, None)


class RayExecutor:
    """Jobs as Ray tasks; datasets go to the object store once; a dead worker's job is retried."""

    isolate = True  # workers are processes of their own; the driver only probes file submissions

    def __init__(self, address: str | None = None, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0,
                 max_retries: int = 2, limits: Limits = NO_LIMITS):
        if not (math.isfinite(cpus_per_job) and cpus_per_job > 0) or not (math.isfinite(gpus_per_job)
                                                                          and gpus_per_job >= 0):
            raise MsabenchError(f"--cpus-per-job must be a finite number > 0 and --gpus-per-job >= 0, got "
                                f"{cpus_per_job}, {gpus_per_job}")
        if gpus_per_job > 1 and gpus_per_job != int(gpus_per_job):
            raise MsabenchError(f"--gpus-per-job above 1 must be a whole number (Ray packs only fractions below 1), "
                                f"got {gpus_per_job:g}")
        self.address, self.cpus, self.gpus, self.max_retries = address, cpus_per_job, gpus_per_job, max_retries
        self.threads = max(1, int(cpus_per_job))  # a fraction of a CPU still runs one thread
        self.limits = limits.check()
        isolation.configure(self.limits)
        self.started = False

    def gpus_per_job(self) -> int:
        """GPUs a job sees: Ray sets CUDA_VISIBLE_DEVICES to the ceil of the reservation."""
        return math.ceil(self.gpus)

    def open(self, jobs: list[Job]) -> None:
        """Join or start the cluster, and refuse a per-job request no node can ever meet."""
        try:
            import ray
        except ImportError:
            raise MsabenchError("--executor ray needs Ray: pip install 'ray==2.60.*'") from None
        self.started = not ray.is_initialized()
        if self.started:
            reachable(self.address)
            try:
                # no address: a fresh local cluster sized to this machine, never a stray one found on it;
                # workers' output stays in Ray's session logs (a crashed worker's dump is no console noise)
                ray.init(address=self.address or "local", include_dashboard=False, logging_level="ERROR",
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                self.started = False
                raise MsabenchError(f"cannot reach a Ray cluster at {self.address}: {e}".splitlines()[0]) from None
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        problem = infeasible(self.cpus, self.gpus, nodes)
        if problem:
            self.close()
            raise MsabenchError(problem)

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def run(self, jobs: list[Job], inputs: dict, tests: dict, done) -> None:
        import ray

        refs = {key: ray.put(inputs[key]) for key in {j.dataset_key for j in jobs}}
        test_refs = {key: ray.put(tests[key]) for key in {j.dataset_key for j in jobs if j.fit_test} if key in tests}
        task = ray.remote(execute).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                           max_retries=self.max_retries, retry_exceptions=False)
        pending = {task.remote(job, refs[job.dataset_key], test_refs.get(job.dataset_key) if job.fit_test else None): job
                   for job in jobs}
        while pending:
            # a bounded wait returns to Python every second, so Ctrl-C is handled at once
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not ready:
                continue
            job = pending.pop(ready[0])
            try:
                preds = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                done(job, None, str(cause) if isinstance(cause, MsabenchError) else f"{job.label}: {type(cause).__name__}: {cause}")
                continue
            except ray.exceptions.RayError as e:
                done(job, None, f"{job.label}: failed after {self.max_retries} retries: {type(e).__name__} (Ray's "
                                f"worker logs: {_ray_logs()})")
                continue
            done(job, preds, None)


def _ray_logs() -> str:
    try:
        import ray

        return str(Path(ray._private.worker.global_worker.node.get_session_dir_path()) / "logs")  # noqa: SLF001
    except Exception:  # noqa: BLE001 - only a hint in a message
        return "/tmp/ray/session_latest/logs"


def reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT Ray address must answer within `timeout` s: ray.init would wait on a dead one past Ctrl-C."""
    if address in (None, "local") or address.startswith("ray://"):
        return
    if address == "auto":
        try:
            address = Path("/tmp/ray/ray_current_cluster").read_text().strip()
        except OSError:
            return  # no local cluster recorded: ray.init says so at once
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise MsabenchError(f"--address {address}: expected HOST:PORT, auto, or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise MsabenchError(f"cannot reach a Ray cluster at {address}: {e.strerror or e} (no answer within "
                            f"{timeout:g} s); no job was started") from None


def infeasible(cpus: float, gpus: float, nodes: list[dict]) -> str | None:
    """Why no node of a cluster (each a Ray resources dict) can run one job, or None if one can."""
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return None
    best_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    best_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    return (f"each job asks for {cpus:g} CPU(s) and {gpus:g} GPU(s) (--cpus-per-job, --gpus-per-job), but no node "
            f"of the Ray cluster has that: {len(nodes)} node(s), the largest with {best_cpu:g} CPU(s) and "
            f"{best_gpu:g} GPU(s); no job was started")


def check_grid(protocols: list[Protocol], models: list[str], datasets: dict, isolate: bool = True
               ) -> dict[str, submission.Submission]:
    """Everything about a grid that can be refused before any work, in one line; the submissions by spec."""
    subs: dict[str, submission.Submission] = {}
    by_name: dict[str, str] = {}
    for spec in models:
        sub = (submission.probe if isolate else submission.load)(spec)
        source = str(sub.path) if not submission.is_bundled(spec) else spec
        if sub.name in by_name and by_name[sub.name] != source:
            raise MsabenchError(f"models {by_name[sub.name]} and {source} both take the name {sub.name!r}: their "
                                "results would overwrite each other; give one of them another NAME")
        by_name[sub.name] = source
        subs[spec] = sub
    names = {}
    for p in protocols:
        if p.name in names and names[p.name] != p.fingerprint:
            raise MsabenchError(f"two protocols in this grid are named {p.name!r} but differ; rename one")
        names[p.name] = p.fingerprint
        if p.split != "test":
            raise MsabenchError(f"protocol {p.name} evaluates on the {p.split} split, which fit is given with its "
                                "labels for model selection; evaluation labels never reach a model: evaluate on test")
        dataset = datasets[(p.dataset, p.variant)]
        if len(dataset[p.split]) == 0:
            raise MsabenchError(f"protocol {p.name}: the {p.split} split of {dataset.name} ({dataset.source}) has no "
                                "samples: nothing to evaluate")
    return subs


def check_text(protocols: list[Protocol], subs: dict[str, submission.Submission], datasets: dict) -> list[str]:
    """Clean-context text under token drops: refused for bundled models unless declared, a warning for files.

    Where a protocol drops single text tokens and the data's token features were computed with the
    whole transcript in context (MMSA's BERT `text`: `registry.text_in_context`), a kept token's
    vector still carries the dropped words; results made on them are not comparable with those of
    models that encode the corrupted ids. Returns the warnings (one per file submission and protocol).
    """
    notes = []
    for p in protocols:
        if not (p.drops_text_tokens and registry.text_in_context(p.dataset, p.variant)):
            continue
        info = datasets[(p.dataset, p.variant)].info
        if not info.text_feature_dim:
            continue
        for sub in subs.values():
            read = sub.text_read(info)
            if read == "features":
                raise MsabenchError(
                    f"model {sub.name} on {p.name}: it would read {p.dataset} {p.variant}'s precomputed token features, "
                    f"computed from the clean transcript, where the protocol drops text tokens (a kept token's vector "
                    f"still carries the dropped words); {sub.options.clean_text_advice()}")
            if read == "unknown":
                notes.append(f"warning: {sub.name} on {p.name}: batch.text_features are {p.dataset} {p.variant}'s token "
                             f"features computed from the clean transcript (zeroed where a token is dropped, but a kept "
                             f"token's vector still carries the dropped words); batch.text_ids carry the corrupted ids")
    return notes


def run_grid(protocols: list[Protocol], models: list[str], datasets: dict, out: str | Path, executor,
             seeds: list[int] | None = None, batch_size: int = 64, progress: bool = True,
             n_seeds: int | None = None) -> GridReport:
    """Check, plan, run and write the grid; job failures are collected, not raised, so the rest completes.

    Each protocol runs for its listed seeds, or those of `seeds` it takes (listed, or past them under
    its rule: `Protocol.allows_seed`), or its first `n_seeds` under its rule (`Protocol.extended_seeds`).

    Hosts get each dataset as models see it (`Dataset.for_models`); predictions come back here,
    where `runner.score` computes every metric from the labelled data and the units are written.
    """
    runner.check_batch_size(batch_size)
    for p in protocols:  # a seed count the protocol's rule cannot give: one line before any work
        protocol_seeds(p, seeds, n_seeds)
    isolate = getattr(executor, "isolate", True)
    models = list(dict.fromkeys(str(m) for m in models))  # the same spec twice is one model
    subs = check_grid(protocols, models, datasets, isolate)
    for sub in subs.values():  # options that cannot work on this data or hardware: one line before any work
        for dataset in datasets.values():
            sub.check(dataset.info, executor.gpus_per_job())
    for note in check_text(protocols, subs, datasets):
        print(f"msabench: {note}", file=sys.stderr)
    jobs, reused = plan(protocols, models, datasets, out, seeds, batch_size, executor.threads, isolate,
                        getattr(executor, "limits", NO_LIMITS), n_seeds)
    report = GridReport(reused=reused, jobs=len(jobs), names={m: sub.name for m, sub in subs.items()})
    if not jobs:
        return report
    keys = {j.dataset_key for j in jobs}
    evaluated = {key: {p.split for j in jobs if j.dataset_key == key for p in j.protocols} for key in keys}
    inputs = {key: datasets[key].for_models(evaluated[key]) for key in keys}
    tests = {key: datasets[key]["test"] for key in keys if any(j.fit_test for j in jobs if j.dataset_key == key)}
    executor.open(jobs)

    def done(job: Job, preds, error: str | None) -> None:
        if error is None:
            try:
                units = [runner.score(pr, datasets[job.dataset_key], p, subs[job.model], job.batch_size, fp)
                         for pr, p, fp in zip(preds, job.protocols, job.masks, strict=True)]
            except (MsabenchError, ValueError, TypeError, AttributeError) as e:
                error = f"{job.label}: its predictions could not be scored: {e}"
        if error is not None:
            report.failures.append((job, error))  # said once, at the end (`msabench run`: one line per failure)
        else:
            for unit, p in zip(units, job.protocols, strict=True):
                results.write_unit(out, unit)
                report.units.append(unit)
                progress_mod.finished(summary(unit, p))
        progress_mod.advance()

    try:
        with progress_mod.bar(len(jobs), "grid", show=progress):
            executor.run(jobs, inputs, tests, done)
    finally:
        executor.close()
    return report


def summary(unit: results.UnitResult, protocol: Protocol) -> str:
    """One line for a finished unit: its primary metric over conditions and what it cost."""
    m = unit.manifest
    primary = protocol.primary_metric
    value = unit.metrics["aggregate"]["mean"].get(primary, math.nan)
    return (f"done: {unit.model} seed {unit.seed} on {unit.protocol}: {primary} {value:.4f} (mean over conditions); "
            f"fit {m.get('fit_seconds', 0):.0f} s, predict {m.get('predict_seconds', 0):.0f} s")


def make(name: str, address: str | None = None, cpus_per_job: float | None = None,
         gpus_per_job: float | None = None, isolate: bool = True, limits: Limits = NO_LIMITS):
    """An executor from command-line settings; `cpus_per_job` None: all CPUs serially, 1 under Ray.

    One rule for executor-specific settings: given to an executor they do not apply to, they
    are refused, never ignored (`--cpus-per-job` applies to both).
    """
    for flag, value in (("--cpus-per-job", cpus_per_job), ("--gpus-per-job", gpus_per_job)):
        if value is not None and not math.isfinite(value):  # inf and nan pass every comparison check below
            raise MsabenchError(f"{flag} must be a finite number, got {value}")
    if name == "serial":
        for flag, value in (("--address", address), ("--gpus-per-job", gpus_per_job)):
            if value is not None:
                raise MsabenchError(f"{flag} applies to --executor ray only (the serial executor runs on this "
                                    "machine with the GPUs it sees)")
        return SerialExecutor(cpus_per_job, isolate, limits)
    if name == "ray":
        if not isolate:
            raise MsabenchError("--in-process applies to --executor serial only (Ray runs jobs in its workers)")
        return RayExecutor(address, 1.0 if cpus_per_job is None else cpus_per_job,
                           0.0 if gpus_per_job is None else gpus_per_job, limits=limits)
    raise MsabenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


@dataclass
class RunReport:
    """What `run` did: the units it computed or found finished, the jobs that failed, notes, where it wrote."""

    protocols: list[Protocol]
    models: list[str]  # the models' result names, in the order given
    out: Path
    units: list[results.UnitResult] = field(default_factory=list)  # computed and re-used, by protocol, model, seed
    reused: list[results.UnitResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (job, one-line error)
    jobs: int = 0  # jobs run (finished or failed)
    notes: list[str] = field(default_factory=list)  # what a user should know (seeds a protocol does not take, ...)

    @property
    def protocol(self) -> Protocol:
        return self.protocols[0]

    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def skipped(self) -> list[int]:
        """Seeds whose finished results were re-used (of the first protocol and model)."""
        return sorted(u.seed for u in self.reused if u.protocol == self.protocol.name and u.model == self.model)

    def of(self, protocol: str, model: str) -> list[results.UnitResult]:
        return [u for u in self.units if u.protocol == protocol and u.model == model]

    def frame(self):
        """One row per unit: protocol, model, seed, whether it was re-used, and every aggregate metric
        (mean over conditions, and the area where the protocol has one), as a pandas DataFrame."""
        import pandas as pd

        reused = {id(u) for u in self.reused}
        rows = []
        for u in self.units:
            row = {"protocol": u.protocol, "model": u.model, "seed": u.seed, "reused": id(u) in reused}
            for agg, values in u.metrics["aggregate"].items():
                row.update({(m if agg == "mean" else f"{m} ({agg})"): v for m, v in values.items()})
            rows.append(row)
        return pd.DataFrame(rows)




def load_protocols(given) -> list[Protocol]:
    """Protocols by name, file or object; the same one twice runs once, two different ones that share a
    name are refused (results are stored by it)."""
    plan: dict[str, tuple[Protocol, str, Path | None]] = {}  # name -> (protocol, as given, its file)
    for g in (given if isinstance(given, (list, tuple)) else [given]):
        p, path = (g, None) if isinstance(g, Protocol) else (protocols_mod.load(g), protocols_mod.source(str(g)))
        if p.name in plan:
            q, first, first_path = plan[p.name]
            same = (first_path.resolve() == path.resolve() if first_path is not None and path is not None
                    else q.fingerprint == p.fingerprint)
            if same:
                continue

            def shown(x, f):
                return str(x) if f is None or Path(str(x)) == f else f"{x} ({f})"

            raise MsabenchError(
                f"--protocol: {shown(first, first_path)} and {shown(g if path else p.name, path)} both define "
                f"protocol '{p.name}'; results are stored under the protocol's name, so one run takes only one of "
                "them (give the file another `name`)")
        plan[p.name] = (p, str(g) if path else p.name, path)
    return [p for p, _, _ in plan.values()]


def check_seeds(plan: list[Protocol], seeds: list[int] | None, n_seeds: int | None) -> list[str]:
    """Seeds checked against every protocol of the plan, before any work; notes to show.

    A protocol takes the seeds it lists and, where its rule defines them (`Protocol.extended_seeds`),
    the consecutive integers after the last. `seeds`: each protocol runs those it takes; a seed that no
    protocol takes is refused, one that only some take is noted. `n_seeds` N: every protocol's first N.
    """
    protocols_mod.check_seed_values(seeds)
    if seeds is not None and n_seeds is not None:
        raise MsabenchError(f"--seeds {' '.join(map(str, seeds))} and --n-seeds {n_seeds}: give one of them "
                            "(--seeds names the seeds, --n-seeds N runs each protocol's first N seeds under its rule)")
    if n_seeds is not None:
        if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
            raise MsabenchError(f"--n-seeds must be a whole number >= 1, got {n_seeds}")
        for p in plan:
            p.extended_seeds(n_seeds)  # one line naming the protocol file where the rule is not defined
        return []
    for s in seeds or []:
        if not any(p.allows_seed(s) for p in plan):
            raise MsabenchError(f"seed {s} is not one of the seeds of "
                                + "; nor of ".join(f"{p.name}, {p.seed_rule()}" for p in plan))
    notes = []
    for p in plan:
        skipped = [s for s in dict.fromkeys(seeds or []) if not p.allows_seed(s)]
        if skipped:
            notes.append(f"note: protocol {p.name} does not take seed(s) {', '.join(map(str, skipped))} (its seeds: "
                         f"{p.seed_rule()}); they ran under the other protocols only")
    return notes


def run(protocol, model, *, seeds: list[int] | None = None, n_seeds: int | None = None,
        out: str | Path = "results", data: str | Path | None = None, data_dir: str | Path | None = None,
        tokenizer: str | None = None, batch_size: int = 64, dataset: Dataset | None = None, executor=None,
        ablate: bool = False, progress: bool = False, strict: bool = True) -> RunReport:
    """Run models under protocols, re-using finished units whose fingerprints match: the one orchestrator
    (`msabench run` parses its flags and calls this; so can a notebook, `msabench.run(...)`).

    `protocol`: a name, file or `Protocol`, or a list of them; `model`: a bundled model spec or a
    submission file, or a list. `seeds`: the seeds to run (each protocol takes those it allows);
    `n_seeds`: each protocol's first N seeds under its rule. `data` / `data_dir`: where the real data
    is (synthetic data is generated); `dataset`: data already loaded, for every protocol. `executor`:
    an executor (`make`), default serial on every CPU of this process. `ablate`: also each bundled
    model's component ablations. `strict`: raise the first failed job's error; else failures are
    collected in the report and the other jobs complete. Everything is checked before any work.
    """
    plan = load_protocols(protocol)
    notes = check_seeds(plan, seeds, n_seeds)
    runner.check_batch_size(batch_size)
    if data and data_dir:
        raise MsabenchError(f"--data {data} and --data-dir {data_dir}: give one of them (--data names the data "
                            "itself, --data-dir a folder in MMSA layout to find it in)")
    if data_dir:
        paths.input_dir(data_dir, "--data-dir")
    paths.output_dir(out, "--out")
    executor = executor or SerialExecutor()
    isolate = getattr(executor, "isolate", True)
    models = [str(m) for m in (model if isinstance(model, (list, tuple)) else [model])]
    if ablate:
        models += [v for m in models for v in submission.ablations(m)]
    if isolate and not all(map(submission.is_bundled, models)):
        isolation.warm_up()  # the worker starts (imports torch) while the data loads here
    datasets = {}
    for p in plan:
        key = (p.dataset, p.variant)
        if key in datasets:
            continue
        ds = dataset or load_data(p.dataset, p.variant, data=data, data_dir=data_dir, tokenizer=tokenizer)
        if ds.variant != p.variant or (p.dataset != "synth-mosi" and ds.name != p.dataset):
            raise MsabenchError(f"protocol {p.name} is for {p.dataset} {p.variant}, but the data given is "
                                f"{ds.name} {ds.variant} ({ds.source})")
        if ds.nonfinite_replaced and dataset is None:
            notes.append(f"note: {ds.nonfinite_replaced} non-finite feature values (-inf/NaN) in {ds.source} were "
                         "set to 0")
        datasets[key] = ds
    grid = run_grid(plan, models, datasets, out, executor, seeds=seeds, batch_size=batch_size, progress=progress,
                    n_seeds=n_seeds)
    if strict and grid.failures:
        raise MsabenchError(grid.failures[0][1])
    names = list(dict.fromkeys(grid.names[m] for m in models))
    order = {(p.name, n): i for i, (p, n) in enumerate((p, n) for p in plan for n in names)}
    units = sorted(grid.reused + grid.units, key=lambda u: (order.get((u.protocol, u.model), 0), u.seed))
    return RunReport(protocols=plan, models=names, out=Path(out), units=units, reused=grid.reused,
                     failures=[(job.label, error) for job, error in grid.failures], jobs=grid.jobs, notes=notes)
