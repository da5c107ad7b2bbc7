"""Running an evaluation grid: serially in this process, or fanned out on a Ray cluster.

The grid is every (model, seed) of the requested models and protocols. A job fits one
model for one seed once and evaluates it under every protocol that shares a dataset,
so training is never repeated. Both executors run the same function on the same
inputs, so their per-sample predictions are bit-identical; the driver writes each
finished unit atomically as it arrives, so an interrupted grid keeps what finished
and a re-run does only what is missing.

Submission code never runs in the driver: files are probed in a worker process, and the
serial executor runs each job of a file submission there too (see msabench.isolation),
so a submission that calls sys.exit or os._exit, or crashes in native code, fails its
own job and the rest of the grid goes on. Bundled models run in-process; under Ray,
every job runs in Ray's workers.

What a job is given: the serial executor gives each job every CPU of this process
(or `cpus_per_job`) and the GPUs it sees; Ray gives `cpus_per_job` CPUs (torch's
thread count is set to it) and the GPUs it reserved with `gpus_per_job`. Requests
that cannot be met fail before anything runs.

`run` is the notebook entry point for one protocol and one model; this module owns it
so that imports flow one way (executors -> runner).
"""

from __future__ import annotations

import math
import pickle
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from msabench import devices, isolation, masking, results, runner, submission
from msabench import protocols as protocols_mod
from msabench.data import Dataset
from msabench.data import load as load_data
from msabench.errors import MsabenchError
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

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed} on {', '.join(p.name for p in self.protocols)}"


@dataclass
class GridReport:
    units: list[results.UnitResult] = field(default_factory=list)
    reused: list[results.UnitResult] = field(default_factory=list)
    failures: list[tuple[Job, str]] = field(default_factory=list)
    jobs: int = 0  # jobs run (finished or failed)


def _submission(job: Job, step=None) -> submission.Submission:
    """Load the job's submission where it runs; a file missing there is rebuilt from its bytes."""
    if step is not None:
        step("import")
    if job.source is None or Path(job.model).is_file():
        sub = submission.load(job.model)
        if job.source is None or sub.path.read_bytes() == job.source:
            return sub
    folder = Path(tempfile.mkdtemp(prefix="msabench-job-"))
    copy = folder / Path(job.model).name
    copy.write_bytes(job.source)
    return replace(submission.load(copy), path=Path(job.model))


def execute(job: Job, dataset: Dataset, step=None) -> list[results.UnitResult]:
    """The work of one job; the same function runs in-process, in the isolation worker and on Ray workers."""
    return runner.run_job(_submission(job, step), dataset, list(job.protocols), job.seed, job.batch_size,
                          threads=job.threads, step=step)


_LAST_DATASET: dict[str, Dataset] = {}  # in a worker: the dataset of the grid it is serving


def execute_file(job: Job, dataset_file: str, step=None) -> list[results.UnitResult]:
    """`execute` in a worker process, reading the dataset the driver pickled once for the grid."""
    if dataset_file not in _LAST_DATASET:
        if step is not None:
            step("loading the dataset")
        with open(dataset_file, "rb") as f:
            dataset = pickle.load(f)
        _LAST_DATASET.clear()
        _LAST_DATASET[dataset_file] = dataset
    return execute(job, _LAST_DATASET[dataset_file], step)


def plan(protocols: list[Protocol], models: list[str], datasets: dict[tuple[str, str], Dataset], out: str | Path,
         seeds: list[int] | None = None, batch_size: int = 64,
         threads: int | None = None, isolate: bool = True) -> tuple[list[Job], list[results.UnitResult]]:
    """The jobs still to run, and the finished units whose fingerprints match (re-used as they are).

    `isolate`: learn file submissions' names in the worker process (`submission.probe`).
    """
    jobs, reused = [], []
    for spec in models:
        sub = (submission.probe if isolate else submission.load)(spec)
        source = None if submission.is_bundled(spec) else sub.path.read_bytes()
        for key, dataset in datasets.items():
            labels: dict[str, dict] = {}  # split -> labels by id, made once for the units re-used
            group = [p for p in protocols if (p.dataset, p.variant) == key]
            wanted = sorted({s for p in group for s in p.seeds if seeds is None or s in seeds})
            for seed in wanted:
                todo = []
                for p in group:
                    if seed not in p.seeds:
                        continue
                    split = dataset[p.split]
                    folder = results.unit_dir(out, p.name, sub.name, seed)
                    fp = masking.fingerprint(p, split, seed)
                    if results.is_current(folder, runner.identity(p, dataset, sub, seed, fp)):
                        # the same data (fingerprint): its labels serve a unit shared without them
                        if p.split not in labels:
                            labels[p.split] = results.labels_by_id(split)
                        reused.append(results.read_unit(folder, labels_by_id=labels[p.split]))
                    else:
                        todo.append(p)
                if todo:
                    jobs.append(Job(spec, seed, tuple(todo), key, batch_size, source, threads))
    return jobs, reused


class SerialExecutor:
    """One job after another, each on all its CPUs (or `cpus_per_job`).

    Jobs of file submissions run in the worker process of msabench.isolation (`isolate=False`:
    in this one, e.g. to step through a submission in a debugger); bundled models run here.
    """

    def __init__(self, cpus_per_job: float | None = None, isolate: bool = True):
        available = devices.available_cpus()
        if cpus_per_job is not None and not (cpus_per_job >= 1 and cpus_per_job == int(cpus_per_job)):
            raise MsabenchError(f"--cpus-per-job must be a whole number >= 1 with the serial executor, got {cpus_per_job:g}")
        if cpus_per_job is not None and cpus_per_job > available:
            raise MsabenchError(f"--cpus-per-job {cpus_per_job:g}: this process may use only {available} CPU(s)")
        self.threads = int(cpus_per_job) if cpus_per_job is not None else available
        self.isolate = isolate
        self._folder: Path | None = None

    def gpus_per_job(self) -> int:
        return devices.visible_gpus()

    def open(self, jobs: list[Job]) -> None:
        pass

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _dataset_file(self, key: tuple[str, str], dataset: Dataset) -> str:
        """The dataset pickled once per grid for isolated jobs (read back by the worker)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="msabench-grid-"))
        path = self._folder / f"{key[0]}-{key[1]}.pkl"
        if not path.exists():
            with path.open("wb") as f:
                pickle.dump(dataset, f, protocol=pickle.HIGHEST_PROTOCOL)
        return str(path)

    def run(self, jobs: list[Job], datasets: dict, done) -> None:
        for job in jobs:
            dataset = datasets[job.dataset_key]
            try:
                if self.isolate and job.source is not None:
                    units = isolation.call(execute_file, (job, self._dataset_file(job.dataset_key, dataset)),
                                           what=f"{Path(job.model).resolve()}, seed {job.seed}")
                else:
                    units = execute(job, dataset)
            except MsabenchError as e:
                done(job, None, str(e))
                continue
            done(job, units, None)


class RayExecutor:
    """Jobs as Ray tasks; datasets go to the object store once; a dead worker's job is retried."""

    isolate = True  # workers are processes of their own; the driver only probes file submissions

    def __init__(self, address: str | None = None, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0,
                 max_retries: int = 2):
        if not cpus_per_job > 0 or not gpus_per_job >= 0:
            raise MsabenchError(f"--cpus-per-job must be > 0 and --gpus-per-job >= 0, got {cpus_per_job}, {gpus_per_job}")
        if gpus_per_job > 1 and gpus_per_job != int(gpus_per_job):
            raise MsabenchError(f"--gpus-per-job above 1 must be a whole number (Ray packs only fractions below 1), "
                                f"got {gpus_per_job:g}")
        self.address, self.cpus, self.gpus, self.max_retries = address, cpus_per_job, gpus_per_job, max_retries
        self.threads = max(1, int(cpus_per_job))  # a fraction of a CPU still runs one thread
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
            try:
                # no address: a fresh local cluster sized to this machine, never a stray one found on it
                ray.init(address=self.address or "local", include_dashboard=False, logging_level="ERROR")
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

    def run(self, jobs: list[Job], datasets: dict, done) -> None:
        import ray

        refs = {key: ray.put(datasets[key]) for key in {j.dataset_key for j in jobs}}
        task = ray.remote(execute).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                           max_retries=self.max_retries, retry_exceptions=False)
        pending = {task.remote(job, refs[job.dataset_key]): job for job in jobs}
        while pending:
            # a bounded wait returns to Python every second, so Ctrl-C is handled at once
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not ready:
                continue
            job = pending.pop(ready[0])
            try:
                units = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                done(job, None, str(cause) if isinstance(cause, MsabenchError) else f"{job.label}: {type(cause).__name__}: {cause}")
                continue
            except ray.exceptions.RayError as e:
                done(job, None, f"{job.label}: failed after {self.max_retries} retries: {type(e).__name__}")
                continue
            done(job, units, None)


def infeasible(cpus: float, gpus: float, nodes: list[dict]) -> str | None:
    """Why no node of a cluster (each a Ray resources dict) can run one job, or None if one can."""
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return None
    best_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    best_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    return (f"each job asks for {cpus:g} CPU(s) and {gpus:g} GPU(s) (--cpus-per-job, --gpus-per-job), but no node "
            f"of the Ray cluster has that: {len(nodes)} node(s), the largest with {best_cpu:g} CPU(s) and "
            f"{best_gpu:g} GPU(s); no job was started")


def run_grid(protocols: list[Protocol], models: list[str], datasets: dict, out: str | Path, executor,
             seeds: list[int] | None = None, batch_size: int = 64, progress: bool = True) -> GridReport:
    """Check, plan, run and write the grid; job failures are collected, not raised, so the rest completes."""
    runner.check_batch_size(batch_size)
    isolate = getattr(executor, "isolate", True)
    for spec in models:  # options that cannot work on this data or hardware: one line before any work
        sub = (submission.probe if isolate else submission.load)(spec)
        for dataset in datasets.values():
            sub.check(dataset.info, executor.gpus_per_job())
    jobs, reused = plan(protocols, models, datasets, out, seeds, batch_size, executor.threads, isolate)
    report = GridReport(reused=reused, jobs=len(jobs))
    if not jobs:
        return report
    executor.open(jobs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="job", desc="grid", file=sys.stderr, disable=None)

    def done(job: Job, units, error: str | None) -> None:
        if error is not None:
            report.failures.append((job, error))
        else:
            for unit in units:
                results.write_unit(out, unit)
                report.units.append(unit)
        if bar is not None:
            bar.update(1)

    try:
        executor.run(jobs, datasets, done)
    finally:
        if bar is not None:
            bar.close()
        executor.close()
    return report


def make(name: str, address: str | None = None, cpus_per_job: float | None = None,
         gpus_per_job: float | None = None, isolate: bool = True):
    """An executor from command-line settings; `cpus_per_job` None: all CPUs serially, 1 under Ray.

    One rule for executor-specific settings: given to an executor they do not apply to, they
    are refused, never ignored (`--cpus-per-job` applies to both).
    """
    if name == "serial":
        for flag, value in (("--address", address), ("--gpus-per-job", gpus_per_job)):
            if value is not None:
                raise MsabenchError(f"{flag} applies to --executor ray only (the serial executor runs on this "
                                    "machine with the GPUs it sees)")
        return SerialExecutor(cpus_per_job, isolate)
    if name == "ray":
        if not isolate:
            raise MsabenchError("--in-process applies to --executor serial only (Ray runs jobs in its workers)")
        return RayExecutor(address, 1.0 if cpus_per_job is None else cpus_per_job,
                           0.0 if gpus_per_job is None else gpus_per_job)
    raise MsabenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


@dataclass
class RunReport:
    """What `run` did: the units it computed or found finished, and where they live."""

    protocol: Protocol
    model: str
    out: Path
    units: list[results.UnitResult] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # seeds whose finished results were re-used


def run(protocol: str | Protocol, model: str | Path, *, seeds: list[int] | None = None, out: str | Path = "results",
        data: str | Path | None = None, data_dir: str | Path | None = None, batch_size: int = 64,
        dataset: Dataset | None = None, progress: bool = False, executor=None) -> RunReport:
    """Run `model` under `protocol` for its seeds, re-using finished units whose fingerprints match.

    The notebook entry point for one protocol and one model; a failure raises (the CLI's grid
    records failures and goes on). `executor`: default serial, on every CPU of this process.
    """
    protocol = protocol if isinstance(protocol, Protocol) else protocols_mod.load(protocol)
    executor = executor or SerialExecutor()
    isolate = getattr(executor, "isolate", True)
    if isolate and not submission.is_bundled(model):
        isolation.warm_up()  # the worker starts while the data loads here
    sub = (submission.probe if isolate else submission.load)(model)
    for s in seeds or []:
        if s not in protocol.seeds:
            raise MsabenchError(f"seed {s} is not one of protocol {protocol.name}'s seeds {list(protocol.seeds)}")
    if dataset is None:
        dataset = load_data(protocol.dataset, protocol.variant, data=data, data_dir=data_dir)
    if dataset.variant != protocol.variant or (protocol.dataset != "synth-mosi" and dataset.name != protocol.dataset):
        raise MsabenchError(f"protocol {protocol.name} is for {protocol.dataset} {protocol.variant}, "
                            f"but the data given is {dataset.name} {dataset.variant} ({dataset.source})")
    grid = run_grid([protocol], [str(model)], {(protocol.dataset, protocol.variant): dataset}, out,
                    executor, seeds=seeds, batch_size=batch_size, progress=progress)
    if grid.failures:
        raise MsabenchError(grid.failures[0][1])
    units = sorted(grid.reused + grid.units, key=lambda u: u.seed)
    return RunReport(protocol=protocol, model=sub.name, out=Path(out), units=units,
                     skipped=sorted(u.seed for u in grid.reused))
