"""The Ray executor on a real local cluster: same predictions as serial, retries, failures, resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest
import torch

from msabench import executors, protocols, results

from conftest import ROOT, small_dataset, write_file

ray = pytest.importorskip("ray", reason="ray is not installed")

RIDGE = """
import numpy as np

class Ridge:
    def fit(self, train, valid, seed):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=train.audio.shape[2])

    def predict(self, batch, mask):
        return (batch.audio.mean(1) * self.w).sum(1) + (batch.text_ids == 100).mean(1)
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(80, 30, 40))


def grid(tmp, data, models, executor, seeds=None):
    plan = [protocols.load("synth-intra"), protocols.load("synth-inter")]
    return executors.run_grid(plan, [str(m) for m in models], {("synth-mosi", "aligned_50"): data}, tmp, executor,
                              seeds=seeds, progress=False)


def stored(out):
    return {(u.protocol, u.model, u.seed): u for u in map(results.read_unit, results.find_units(out))}


THREADS = """
import numpy as np
import torch

class Threads:
    def predict(self, batch, mask):
        return np.full(len(batch), float(torch.get_num_threads()))
"""


def test_ray_matches_serial_bit_for_bit(cluster, data, tmp_path):
    """Same CPUs per job (the thread count is part of a bundled model's placement) -> same bits."""
    ridge = write_file(tmp_path / "ridge.py", RIDGE)
    models = [ridge, "mean", "text-only:hidden=16,epochs=2", ROOT / "submissions" / "example.py"]
    a = grid(tmp_path / "serial", data, models, executors.SerialExecutor(1))
    b = grid(tmp_path / "ray", data, models, executors.RayExecutor(cpus_per_job=1))
    assert not a.failures and not b.failures
    sa, sb = stored(tmp_path / "serial"), stored(tmp_path / "ray")
    assert sa.keys() == sb.keys() and len(sa) == 2 * 4 * 3
    for key in sa:
        assert np.array_equal(sa[key].predictions, sb[key].predictions), key
        assert json.dumps(results.jsonable(sa[key].metrics)) == json.dumps(results.jsonable(sb[key].metrics))
        assert sa[key].manifest["masks_fingerprint"] == sb[key].manifest["masks_fingerprint"]


def test_jobs_get_the_cpus_they_reserve_as_torch_threads(cluster, data, tmp_path):
    probe = write_file(tmp_path / "threads.py", THREADS)
    for cpus in (1, 2):
        report = grid(tmp_path / f"out{cpus}", data, [probe], executors.RayExecutor(cpus_per_job=cpus), seeds=[1111])
        assert not report.failures and {float(cpus)} == {x for u in report.units for x in u.predictions.tolist()}
    # a bundled model trained on 2 threads in a Ray worker = trained on 2 threads serially, each from scratch:
    # the driver trains into its own cache, the workers into the one they started with
    spec = "late-fusion:hidden=12,epochs=1"
    shared = os.environ["MSABENCH_CACHE"]
    os.environ["MSABENCH_CACHE"] = str(tmp_path / "driver-cache")
    try:
        grid(tmp_path / "s2", data, [spec], executors.SerialExecutor(2), seeds=[1112])
    finally:
        os.environ["MSABENCH_CACHE"] = shared
    grid(tmp_path / "r2", data, [spec], executors.RayExecutor(cpus_per_job=2), seeds=[1112])
    trained = [torch.load(f, weights_only=True)["meta"] for root in (tmp_path / "driver-cache", Path(shared))
               for f in Path(root).rglob("late-fusion/*.pt")]
    trained = [m for m in trained if m["options"]["hidden"] == 12]
    assert len(trained) == 2 and all(m["compute"]["threads"] == 2 for m in trained)
    sa, sb = stored(tmp_path / "s2"), stored(tmp_path / "r2")
    assert sa.keys() == sb.keys() and len(sa) == 2
    assert all(np.array_equal(sa[k].predictions, sb[k].predictions) for k in sa)
    assert {u.manifest["compute"]["threads"] for u in sb.values()} == {2}


def test_infeasible_request_message_names_request_and_cluster():
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 8.0, "GPU": 1.0}]
    assert executors.infeasible(4, 0.5, nodes) is None
    assert executors.infeasible(8, 1, nodes) is None
    msg = executors.infeasible(16, 0.25, nodes)
    assert "16 CPU(s) and 0.25 GPU(s)" in msg and "2 node(s), the largest with 8 CPU(s) and 1 GPU(s)" in msg
    assert "0 GPU(s)" in executors.infeasible(1, 0.5, [{"CPU": 2.0}])


@pytest.mark.parametrize("flags,asked", [(["--gpus-per-job", "0.5"], "1 CPU(s) and 0.5 GPU(s)"),
                                         (["--cpus-per-job", "64"], "64 CPU(s) and 0 GPU(s)")])
def test_infeasible_request_is_refused_before_any_job(tmp_path, flags, asked):
    """On a real local cluster started by the CLI: one line, exit 2, nothing run or written (no hang)."""
    cmd = [sys.executable, "-m", "msabench", "run", "--protocol", "synth-inter", "--model", "mean",
           "--executor", "ray", *flags, "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert asked in lines[0] and "no node of the Ray cluster has that" in lines[0] and "no job was started" in lines[0]
    assert not (tmp_path / "out").exists()


def test_killed_worker_is_retried(cluster, data, tmp_path):
    """A Ray worker (the job's host) that dies is retried; a submission that kills its own process only
    fails its job, in one line, as it does serially (its process is not the Ray worker)."""
    marker = tmp_path / "killed-once"
    killer = write_file(tmp_path / "killer.py", f"""
        import os, signal
        from pathlib import Path
        import numpy as np

        class Killer:
            def predict(self, batch, mask):
                mark = Path({str(marker)!r})
                if not mark.exists():
                    mark.write_text("the first attempt kills its host, the Ray worker")
                    os.kill(os.getppid(), signal.SIGKILL)
                return np.full(len(batch), 0.5)
        """)
    report = grid(tmp_path / "out", data, [killer], executors.RayExecutor(max_retries=2), seeds=[1111])
    assert marker.exists() and not report.failures
    units = stored(tmp_path / "out")
    assert len(units) == 2 and all(np.all(u.predictions == 0.5) for u in units.values())
    suicide = write_file(tmp_path / "suicide.py", """
        import os, signal

        class Suicide:
            def predict(self, batch, mask):
                os.kill(os.getpid(), signal.SIGKILL)
        """)
    report = grid(tmp_path / "out2", data, [suicide], executors.RayExecutor(max_retries=2), seeds=[1111])
    assert len(report.failures) == 1
    assert "suicide.py, seed 1111: its process was killed by signal SIGKILL during predict" in report.failures[0][1]


def test_failing_job_is_reported_and_the_rest_completes(cluster, data, tmp_path):
    bad = write_file(tmp_path / "bad.py", """
        class Bad:
            def predict(self, batch, mask):
                raise ValueError("always")
        """)
    report = grid(tmp_path / "out", data, [bad, "mean"], executors.RayExecutor(), seeds=[1111, 1112])
    assert len(report.failures) == 2
    assert all("predict raised ValueError: always" in err and "bad.py" in err for _, err in report.failures)
    assert sorted(stored(tmp_path / "out")) == sorted(
        (p, "mean", s) for p in ("synth-intra", "synth-inter") for s in (1111, 1112))


def test_rerun_does_only_what_is_missing(cluster, data, tmp_path):
    ridge = write_file(tmp_path / "ridge.py", RIDGE)
    full = grid(tmp_path / "full", data, [ridge], executors.RayExecutor())
    part = grid(tmp_path / "part", data, [ridge], executors.RayExecutor(), seeds=[1112])
    rest = grid(tmp_path / "part", data, [ridge], executors.RayExecutor())
    assert len(full.units) == 6 and len(part.units) == 2 and len(rest.reused) == 2 and len(rest.units) == 4
    a, b = stored(tmp_path / "full"), stored(tmp_path / "part")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k].predictions, b[k].predictions) for k in a)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW = """
import time
from pathlib import Path
import numpy as np

class Slow:
    def fit(self, train, valid, seed):
        # while slow.flag lies beside this file, the first seed finishes soon and the others run long enough
        # that the interrupt, sent once the first results are on disk, always lands while they are still
        # running, however loaded the machine; without it (the resumed and the serial runs) no wait at all
        if Path(__file__).with_name("slow.flag").exists():
            time.sleep(3 if seed == 1111 else 15)
        self.bias = seed / 10000

    def predict(self, batch, mask):
        return np.full(len(batch), self.bias)
"""


def test_cli_on_a_cluster_started_with_ray_start(tmp_path):
    port = _free_port()
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    # a loopback test cluster: Ray's token authentication is switched off on both sides
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--block",
                             "--include-dashboard=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        slow = write_file(tmp_path / "slow.py", SLOW)
        cmd = [sys.executable, "-m", "msabench", "run", "--protocol", "synth-inter", "--model", str(slow),
               "--executor", "ray", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "out")]
        proc = None
        time.sleep(5)
        for _ in range(10):  # the head takes a few seconds to come up
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
            if proc.returncode == 0 or "cannot reach a Ray cluster" not in proc.stderr:
                break
            time.sleep(1)
        assert proc.returncode == 0, proc.stderr
        assert "slow on synth-inter" in proc.stdout
        assert len(results.find_units(tmp_path / "out")) == 3
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def test_interrupted_cli_run_keeps_complete_results_and_resumes(tmp_path):
    slow = write_file(tmp_path / "slow.py", SLOW)
    flag = write_file(tmp_path / "slow.flag", "")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "msabench", "run", "--protocol", "synth-intra", "synth-inter", "--model",
           str(slow), "mean", "--executor", "ray", "--out", str(out)]
    # a job started in the background by a non-interactive shell inherits SIGINT ignored; the child gets the
    # default back, as from a terminal, so that Python turns the signal into KeyboardInterrupt
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and len(results.find_units(out)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = results.find_units(out)
    assert 2 <= len(done) < 12, err
    for folder in done:  # every result folder present is complete and readable
        assert results.read_unit(folder).predictions.size > 0
    flag.unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(results.find_units(out)) == 12
    serial = tmp_path / "serial"
    subprocess.run(cmd[:-4] + ["--out", str(serial)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                   check=True)
    a, b = stored(out), stored(serial)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].predictions, b[k].predictions) for k in a)
