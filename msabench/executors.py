"""Running an evaluation grid: serially in this process, or fanned out on a Ray cluster.

The grid is every (model, seed) of the requested models and protocols. A job fits one
model for one seed once and evaluates it under every protocol that shares a dataset,
so training is never repeated. Both executors run the same function on the same
inputs, so their per-sample predictions are bit-identical; the driver writes each
finished unit atomically as it arrives, so an interrupted grid keeps what finished
and a re-run does only what is missing.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from msabench import masking, results, runner, submission
from msabench.data import Dataset
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

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed} on {', '.join(p.name for p in self.protocols)}"


@dataclass
class GridReport:
    units: list[results.UnitResult] = field(default_factory=list)
    reused: list[results.UnitResult] = field(default_factory=list)
    failures: list[tuple[Job, str]] = field(default_factory=list)


def _submission(job: Job) -> submission.Submission:
    """Load the job's submission where it runs; a file missing there is rebuilt from its bytes."""
    if job.source is None or Path(job.model).is_file():
        sub = submission.load(job.model)
        if job.source is None or sub.path.read_bytes() == job.source:
            return sub
    folder = Path(tempfile.mkdtemp(prefix="msabench-job-"))
    copy = folder / Path(job.model).name
    copy.write_bytes(job.source)
    return replace(submission.load(copy), path=Path(job.model))


def execute(job: Job, dataset: Dataset) -> list[results.UnitResult]:
    """The work of one job; the same function runs in-process and on Ray workers."""
    return runner.run_job(_submission(job), dataset, list(job.protocols), job.seed, job.batch_size)


def plan(protocols: list[Protocol], models: list[str], datasets: dict[tuple[str, str], Dataset], out: str | Path,
         seeds: list[int] | None = None, batch_size: int = 64) -> tuple[list[Job], list[results.UnitResult]]:
    """The jobs still to run, and the finished units whose fingerprints match (re-used as they are)."""
    jobs, reused = [], []
    for spec in models:
        sub = submission.load(spec)
        source = None if spec.split(":")[0] in submission.bundled() else sub.path.read_bytes()
        for key, dataset in datasets.items():
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
                        reused.append(results.read_unit(folder))
                    else:
                        todo.append(p)
                if todo:
                    jobs.append(Job(spec, seed, tuple(todo), key, batch_size, source))
    return jobs, reused


class SerialExecutor:
    """In this process, one job after another: for debugging and small grids."""

    def run(self, jobs: list[Job], datasets: dict, done) -> None:
        for job in jobs:
            try:
                units = execute(job, datasets[job.dataset_key])
            except MsabenchError as e:
                done(job, None, str(e))
                continue
            done(job, units, None)


class RayExecutor:
    """Jobs as Ray tasks; datasets go to the object store once; a dead worker's job is retried."""

    def __init__(self, address: str | None = None, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0,
                 max_retries: int = 2):
        if cpus_per_job <= 0 or gpus_per_job < 0:
            raise MsabenchError(f"--cpus-per-job must be > 0 and --gpus-per-job >= 0, got {cpus_per_job}, {gpus_per_job}")
        self.address, self.cpus, self.gpus, self.max_retries = address, cpus_per_job, gpus_per_job, max_retries

    def run(self, jobs: list[Job], datasets: dict, done) -> None:
        try:
            import ray
        except ImportError:
            raise MsabenchError("--executor ray needs Ray: pip install 'ray==2.60.*'") from None
        started = not ray.is_initialized()
        if started:
            try:
                # no address: a fresh local cluster sized to this machine, never a stray one found on it
                ray.init(address=self.address or "local", include_dashboard=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise MsabenchError(f"cannot reach a Ray cluster at {self.address}: {e}".splitlines()[0]) from None
        try:
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
        finally:
            if started:
                ray.shutdown()


def run_grid(protocols: list[Protocol], models: list[str], datasets: dict, out: str | Path, executor,
             seeds: list[int] | None = None, batch_size: int = 64, progress: bool = True) -> GridReport:
    """Plan, run and write the grid; failures are collected, not raised, so the rest completes."""
    jobs, reused = plan(protocols, models, datasets, out, seeds, batch_size)
    report = GridReport(reused=reused)
    bar = None
    if progress and jobs:
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
    return report


def make(name: str, address: str | None = None, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0):
    if name == "serial":
        if address or gpus_per_job:
            raise MsabenchError("--address and --gpus-per-job apply to --executor ray only")
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(address, cpus_per_job, gpus_per_job)
    raise MsabenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
