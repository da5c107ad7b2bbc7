"""The worker a submission runs in: its pipe, its limits, its children, and what the driver refuses.

Real processes throughout: the command line in a subprocess, real workers, real Ray.
"""

import os
import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msabench import isolation, results

from conftest import ROOT, small_raw, write_pickle

RUN = ["run", "--protocol", "synth-inter", "--seeds", "1111"]
ZEROS = "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n"


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, "MSABENCH_DATA": "", **(env or {})})


def one_line(proc, status):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("msabench: error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ---- the wire ----------------------------------------------------------------------------------------

def test_wire_round_trip_and_what_it_refuses():
    value = {"kind": "ok", "value": [np.arange(5, dtype=np.float64), {"a": None, "b": 1.5, "c": "x"}, True],
             "retire": False}
    back = isolation.decode(isolation.encode(value))
    assert back["value"][0].dtype == np.float64 and np.array_equal(back["value"][0], np.arange(5.0))
    assert back["value"][1] == {"a": None, "b": 1.5, "c": "x"} and back["value"][2] is True
    with pytest.raises(TypeError):
        isolation.encode({"x": object()})
    with pytest.raises(TypeError):
        isolation.encode(np.array(["a"], dtype=object))
    raw = isolation.encode({"x": np.zeros(4)})
    for bad in (pickle.dumps(("ok", 1, False)), raw[:-8], raw[:10], b"", b"\x00" * 8 + b"{"):
        with pytest.raises(isolation.WireError):
            isolation.decode(bad)


# ---- limits ----------------------------------------------------------------------------------------

def test_timeout_stops_a_slow_fit(tmp_path):
    slow = file(tmp_path, "slow.py", """
        import time
        import numpy as np
        class M:
            def fit(self, train, valid, seed):
                time.sleep(120)
            def predict(self, batch, mask):
                return np.zeros(len(batch.ids))
        """)
    t0 = time.monotonic()
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", slow, "--timeout", "4"), 1)
    assert time.monotonic() - t0 < 60
    assert "slow.py, seed 1111: fit(train, valid, seed=1111) took longer than --timeout 4 s" in line
    assert not (tmp_path / "out" / "synth-inter" / "slow").exists()


def test_memory_limit_names_the_call(tmp_path):
    hog = file(tmp_path, "hog.py", """
        import numpy as np
        class M:
            def fit(self, train, valid, seed):
                self.x = np.ones(3 * 2**30 // 8)  # 3 GB
            def predict(self, batch, mask):
                return np.zeros(len(batch.ids))
        """)
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", hog, "--memory", "1.5"), 1)
    assert "hog.py" in line and "fit(train, valid, seed=1111)" in line and "--memory 1.5 GB" in line


@pytest.mark.parametrize("flag,value", [("--timeout", "0"), ("--timeout", "inf"), ("--memory", "-1"),
                                        ("--memory", "nan")])
def test_bad_limits_are_refused(tmp_path, flag, value):
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", "mean", flag, value), 2)
    assert f"{flag} must be a finite number > 0" in line and not (tmp_path / "out").exists()


def test_limits_do_not_apply_in_process(tmp_path):
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", "mean", "--in-process", "--timeout", "5"), 2)
    assert "--in-process has none" in line


def test_sandbox_refused_without_bubblewrap(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", "mean", "--sandbox", env={"PATH": str(bare)}), 2)
    assert "--sandbox: bubblewrap is not installed" in line and not (tmp_path / "out").exists()


def test_children_end_with_their_job(tmp_path):
    """Processes a submission starts (a child, and a daemon that left the process group) are gone once
    its job ends, though the worker is kept for the next job."""
    pids = tmp_path / "pids"
    spawner = file(tmp_path, "spawner.py", f"""
        import os, subprocess
        import numpy as np
        class M:
            def fit(self, train, valid, seed):
                child = subprocess.Popen(["sleep", "300"])
                daemon = subprocess.Popen(["setsid", "sleep", "301"])
                with open({str(pids)!r}, "a") as f:
                    f.write(f"{{child.pid}} {{daemon.pid}}\\n")
            def predict(self, batch, mask):
                return np.zeros(len(batch.ids))
        """)
    proc = cli("run", "--protocol", "synth-inter", "--seeds", "1111", "1112", "--out", tmp_path / "out",
               "--model", spawner)
    assert proc.returncode == 0, proc.stderr
    started = [int(p) for line in pids.read_text().splitlines() for p in line.split()]
    assert len(started) == 4
    time.sleep(0.5)
    alive = []
    for pid in started:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie has ended; its parent has not read its status yet
            alive.append(pid)
    assert not alive, alive


# ---- what the driver refuses before any work -------------------------------------------------------

def test_two_models_with_one_name_are_refused(tmp_path):
    a = file(tmp_path, "a.py", "import numpy as np\nNAME = 'same'\nclass M:\n" + ZEROS)
    b = file(tmp_path, "b.py", "import numpy as np\nNAME = 'same'\nclass M:\n" + ZEROS)
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", a, b), 2)
    assert str(a) in line and str(b) in line and "'same'" in line and not (tmp_path / "out").exists()
    mean = file(tmp_path, "fake.py", "import numpy as np\nNAME = 'mean'\nclass M:\n" + ZEROS)
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", "mean", mean), 2)
    assert "models mean and" in line and str(mean) in line and not (tmp_path / "out").exists()


def test_the_same_file_twice_is_one_model(tmp_path):
    a = file(tmp_path, "a.py", "import numpy as np\nclass M:\n" + ZEROS)
    proc = cli(*RUN, "--out", tmp_path / "out", "--model", a, a)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "out" / "synth-inter" / "a").iterdir()] == ["seed-1111"]


def test_empty_evaluation_split_is_refused(tmp_path):
    data = tmp_path / "aligned_50.pkl"
    write_pickle(data, small_raw(sizes=(80, 30, 0)))
    proto = file(tmp_path, "p.toml", """
        name = "p"
        version = 1
        dataset = "mosi"
        variant = "aligned_50"
        seeds = [1]
        primary_metric = "MAE"
        [missing]
        kind = "inter"
        """)
    line = one_line(cli("run", "--protocol", proto, "--model", "mean", "--out", tmp_path / "out", "--data", data), 2)
    assert "the test split" in line and "has no samples" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


@pytest.mark.parametrize("body,needle", [
    ("return np.zeros(len(batch.ids)) + 1j", "predict returned complex numbers"),
    ("return np.full(len(batch.ids), 1e308)", "predict returned 1e+308 for sample"),
    ("return np.full(len(batch.ids), -1e308)", "a score beyond +-1e+06"),
])
def test_unusable_predictions_fail_their_job(tmp_path, body, needle):
    bad = file(tmp_path, "bad.py", f"import numpy as np\nclass M:\n    def predict(self, batch, mask):\n        {body}\n")
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", bad), 1)
    assert needle in line and "condition T, seed 1111, samples 0-63" in line
    assert not (tmp_path / "out" / "synth-inter" / "bad").exists()


# ---- what readers refuse ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board(tmp_path_factory):
    folder = tmp_path_factory.mktemp("board")
    zeros = file(folder, "zeros.py", "import numpy as np\nclass M:\n" + ZEROS)
    out = folder / "out"
    proc = cli(*RUN, "--out", out, "--model", "mean", zeros)
    assert proc.returncode == 0, proc.stderr
    return out


def edited(board, tmp_path, edit):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(board, out)
    folder = out / "synth-inter" / "mean" / "seed-1111"
    edit(folder)
    return out, folder


MANIFEST_EDITS = {
    "seed is a string": (lambda m: m.update(seed="abc"), "key 'seed' must be a int, got str 'abc'"),
    "key deleted": (lambda m: m.pop("dataset_fingerprint"), "key 'dataset_fingerprint' must be a str, got missing"),
    "conditions not a list": (lambda m: m.update(conditions="T"), "key 'conditions' must be a list"),
    "model moved": (lambda m: m.update(model="zeros"), "it says protocol synth-inter, model zeros"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS) + ["a list, not an object"])
@pytest.mark.parametrize("command", ["compare", "leaderboard"])
def test_edited_manifests_are_named_in_one_line(board, tmp_path, case, command):
    import json

    def edit(folder):
        path = folder / "manifest.json"
        if case == "a list, not an object":
            path.write_text("[1, 2]")
            return
        m = json.loads(path.read_text())
        MANIFEST_EDITS[case][0](m)
        path.write_text(json.dumps(m))

    out, folder = edited(board, tmp_path, edit)
    if command == "compare":
        proc = cli("compare", "mean", "zeros", "--protocol", "synth-inter", "--results", out, "--resamples", "200")
    else:
        proc = cli("leaderboard", "--results", out, "--out", tmp_path / "lb", "--no-figures", "--resamples", "200")
    line = one_line(proc, 2)
    assert str(folder) in line
    needle = MANIFEST_EDITS[case][1] if case in MANIFEST_EDITS else "no readable manifest.json"
    assert needle in line


def test_edited_labels_are_refused(board, tmp_path):
    def edit(folder):
        table = pq.read_table(folder / "labels.parquet")
        labels = np.zeros(table.num_rows)  # every label 0: a constant-zero model would look perfect
        pq.write_table(pa.table({"id": table.column("id"), "label": pa.array(labels)}), folder / "labels.parquet")

    out, folder = edited(board, tmp_path, edit)
    for proc in (cli("leaderboard", "--results", out, "--out", tmp_path / "lb", "--no-figures", "--resamples", "200"),
                 cli("compare", "mean", "zeros", "--protocol", "synth-inter", "--results", out, "--resamples", "200")):
        line = one_line(proc, 2)
        assert str(folder) in line and "differ from the data's own labels" in line


def test_edited_metrics_json_changes_nothing(board, tmp_path):
    import json

    def edit(folder):
        doc = json.loads((folder / "metrics.json").read_text())
        doc["aggregate"]["mean"]["MAE"] = 0.0
        (folder / "metrics.json").write_text(json.dumps(doc))

    out, folder = edited(board, tmp_path, edit)
    unit = results.read_unit(folder)
    assert unit.metrics["aggregate"]["mean"]["MAE"] > 0.5
    proc = cli("leaderboard", "--results", out, "--out", tmp_path / "lb", "--no-figures", "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "lb" / "results.json").read_text())["results"]
    mae = [r["MAE"] for r in rows if r["model"] == "mean" and r["condition"] == "<mean>"]
    assert mae == [pytest.approx(unit.metrics["aggregate"]["mean"]["MAE"])]


# ---- concurrency and Ray ---------------------------------------------------------------------------

def test_two_runs_on_one_out_folder(tmp_path):
    """Two concurrent runs into one folder: neither removes the other's live temporary folders."""
    out = tmp_path / "out"
    zeros = file(tmp_path, "zeros.py", "import numpy as np\nclass M:\n" + ZEROS)
    cmd = [sys.executable, "-m", "msabench", "run", "--protocol", "synth-inter", "synth-intra", "--model", "mean",
           str(zeros), "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    units = results.find_units(out)
    assert len(units) == 2 * 2 * 3 and all(results.read_unit(u).ids.size for u in units)
    assert not [p for p in out.rglob(".seed-*")]


def test_write_keeps_a_live_writers_temporary_folder(tmp_path):
    """A temporary folder of a live process is never swept; a dead one's is."""
    from msabench import runner, submission
    from msabench import protocols
    from conftest import small_dataset

    unit = runner.run_unit(submission.load("mean"), small_dataset(), protocols.load("synth-inter"), 1111)
    folder = results.unit_dir(tmp_path, unit.protocol, unit.model, unit.seed)
    folder.parent.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    live = folder.parent / f".{folder.name}.tmp-{sleeper.pid}-abcd1234"
    dead = folder.parent / f".{folder.name}.tmp-999999999-abcd1234"
    live.mkdir()
    dead.mkdir()
    try:
        results.write_unit(tmp_path, unit)
        assert live.exists() and not dead.exists() and (folder / "predictions.parquet").exists()
    finally:
        sleeper.kill()


def test_ray_dead_address_is_one_line_quickly(tmp_path):
    pytest.importorskip("ray")
    t0 = time.monotonic()
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", "mean", "--executor", "ray",
                        "--address", "127.0.0.1:9"), 2)
    assert time.monotonic() - t0 < 30
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in line and not (tmp_path / "out").exists()


def test_a_crashing_ray_worker_is_one_line(tmp_path):
    """A job whose Ray worker segfaults on every try: one line, the dump left in Ray's logs."""
    pytest.importorskip("ray")
    crasher = file(tmp_path, "crasher.py", """
        import os, signal
        class M:
            def predict(self, batch, mask):
                os.kill(os.getppid(), signal.SIGSEGV)  # the Ray worker hosting this job
        """)
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", crasher, "--executor", "ray"), 1)
    assert "crasher.py seed 1111 on synth-inter: failed after 2 retries" in line and "logs" in line


def test_an_exception_whose_str_raises_is_the_submissions(tmp_path):
    odd = file(tmp_path, "odd.py", """
        class Odd(Exception):
            def __str__(self):
                raise ValueError("no message for you")
        class M:
            def predict(self, batch, mask):
                raise Odd()
        """)
    line = one_line(cli(*RUN, "--out", tmp_path / "out", "--model", odd), 1)
    assert "odd.py: condition T, seed 1111, samples 0-63: predict raised Odd: (its message could not be read" in line
    assert "please report it" not in line
