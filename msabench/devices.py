"""Where a job computes: device, precision and CPU threads, checked up front and resolved once.

Bundled models take `device` (auto | cpu | cuda | cuda:N), `precision` (auto | fp32 | bf16)
and `threads` (0 = the job's CPUs). The executor decides what a job is given (all cores
serially, `--cpus-per-job` under Ray; the GPUs Ray reserved with `--gpus-per-job`) and the
runner sets torch's thread count to it; a model then resolves its options against what it
sees. Why a module of its own: the same rules serve the driver's up-front check (one line,
exit 2, before any work) and the worker's resolution, so the two can never disagree.

Determinism per device (README, Determinism):
- CPU, fp32: float32 training, float64 prediction rounded to float32; same weights for the
  same seed, machine, software and thread count; predictions independent of batch size.
- CUDA: deterministic algorithms (cuBLAS workspace set below, before any CUDA context),
  no TF32, the math attention kernel in training (the fused kernels' backward passes use
  atomics); same seed + GPU model + software = same weights and predictions.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import asdict, dataclass, replace

from msabench.errors import MsabenchError

# cuBLAS reads this when it creates its first handle: set before anything touches CUDA.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = ("auto", "fp32", "bf16")
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without a CUDA build of torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check(device: str, precision: str, threads: int = 0, gpus: int | None = None, where: str = "model") -> None:
    """Reject a device/precision/threads request that cannot work, in one line.

    `gpus` is how many GPUs the job will see (None: don't check against hardware).
    """
    m = _DEVICE.match(device)
    if not m or (m.group(1) != "cuda" and m.group(2) is not None):
        raise MsabenchError(f"{where}: option device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if precision not in PRECISIONS:
        extra = " (fp16 needs loss scaling, which the shared recipe does not do; use bf16)" if precision == "fp16" else ""
        raise MsabenchError(f"{where}: option precision must be auto, fp32 or bf16{extra}, got {precision!r}")
    if threads < 0:
        raise MsabenchError(f"{where}: option threads must be >= 0 (0: the CPUs the job is given), got {threads}")
    if gpus is None or m.group(1) != "cuda":
        return
    if gpus == 0:
        raise MsabenchError(f"{where}: device={device} but the job sees no GPU (torch.cuda.is_available() is "
                            f"False here, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}; "
                            "under Ray pass --gpus-per-job); use device=auto or device=cpu")
    index = int(m.group(2) or 0)
    if index >= gpus:
        raise MsabenchError(f"{where}: device={device} but the job sees {gpus} GPU(s): cuda:0 to cuda:{gpus - 1}")


@dataclass(frozen=True)
class Compute:
    """A resolved placement: what a model trains and predicts with."""

    device: str  # "cpu" or "cuda:N"
    precision: str  # "fp32" or "bf16"
    threads: int  # CPU threads torch uses
    name: str = ""  # the device's model name (GPU model, or CPU architecture)

    @property
    def kind(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"

    @property
    def exact(self) -> bool:
        """CPU fp32: predict in float64, so a sample's score does not depend on its batch."""
        return self.kind == "cpu" and self.precision == "fp32"

    def autocast(self):
        """bf16 autocast on this device (weights stay float32); a no-op for fp32."""
        import torch

        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.kind, dtype=torch.bfloat16)

    def training(self):
        """What training runs under: autocast, and on CUDA the deterministic attention kernel."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.autocast())
        if self.kind == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        return stack

    def identity(self) -> dict:
        """What determines trained weights besides data, options and seed: part of a checkpoint's fingerprint."""
        out = {"kind": self.kind, "precision": self.precision}
        if self.kind == "cpu":
            out["threads"] = self.threads
        else:
            out["device_name"] = self.name  # same GPU model, same weights: another model may differ
        return out

    def describe(self) -> dict:
        """For manifests: the device by name, precision, threads and the CUDA version."""
        import torch

        return {**asdict(self), "cuda": torch.version.cuda}


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def cpu_name() -> str:
    """The CPU model and the instruction set torch's kernels use: CPU bits differ between, say, an AVX2 and
    an AVX512 machine for the same seed and thread count, so a manifest has to say which one made them."""
    import platform
    import sys

    torch = sys.modules.get("torch")  # not imported for a submission without torch: no kernels to name
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    kernels = f", torch CPU capability {torch.backends.cpu.get_cpu_capability()}" if torch else ""
    return f"{model} ({platform.machine()}{kernels})"


def resolve(device: str = "auto", precision: str = "auto", threads: int = 0, where: str = "model") -> Compute:
    """Options as written -> the placement this process uses, with the device's name."""
    import torch

    gpus = visible_gpus()
    bf16_ok = torch.cuda.is_bf16_supported() if gpus else False
    compute = choose(device, precision, threads, gpus, bf16_ok, where)
    return replace(compute, name=device_name(compute.device))


def choose(device: str, precision: str, threads: int, gpus: int, bf16_ok: bool, where: str = "model") -> Compute:
    """The rules of `resolve`, given what the process sees (pure: tests cover the CUDA branches on a CPU)."""
    import torch

    check(device, precision, threads, gpus, where)
    if device == "auto":
        device = "cuda:0" if gpus else "cpu"
    elif device == "cuda":
        device = "cuda:0"
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if kind == "cuda":
        if precision == "bf16" and not bf16_ok:
            raise MsabenchError(f"{where}: precision=bf16 but {device} does not support bfloat16; use precision=fp32")
        precision = ("bf16" if bf16_ok else "fp32") if precision == "auto" else precision
    elif precision == "auto":
        precision = "fp32"  # CPU bf16 is slow without AMX and breaks the exact float64 predictions
    return Compute(device=device, precision=precision, threads=threads or torch.get_num_threads())


def prepare(compute: Compute, strict: bool = True) -> None:
    """Process-wide settings for deterministic work on `compute` (idempotent).

    `strict=False` is for code msabench does not own (MMSA's models): an op that has no deterministic
    kernel warns instead of failing the run, and the model names such ops in its manifest.
    """
    import torch

    torch.use_deterministic_algorithms(True, warn_only=not strict)
    if compute.kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 rounds inputs to 10 bits
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class threads:
    """torch uses `n` CPU threads inside `with` (None: leave as is), then what it used before."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        import torch

        self.prev = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.prev)


def job_environment() -> dict:
    """For manifests of any submission: the CPU threads and GPUs the job could use."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return {"threads": None, "gpus": [], "cuda": None, "cpu": cpu_name()}
    gpus = [torch.cuda.get_device_name(i) for i in range(visible_gpus())]
    return {"threads": torch.get_num_threads(), "gpus": gpus, "cuda": torch.version.cuda, "cpu": cpu_name()}


def reset_peak_memory() -> None:
    """Start a job's GPU memory peak afresh (Ray reuses workers across jobs)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float | None:
    """Peak GPU memory allocated by torch in this process since the last reset (None: no CUDA used)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
