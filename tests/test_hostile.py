"""Hostile inputs, as a new user would try them: every one gives one line, the documented exit
status, no traceback and nothing half-written; a failing job never stops the rest of a grid.

Each case runs the real command line in a subprocess. Families: submissions (exits, crashes,
names), protocols, data files, flags, output and results paths, and interrupts.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from msabench import results

from conftest import ROOT, small_raw, write_file, write_pickle

ZEROS = "import numpy as np\n\nclass M:\n    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n"

SUBMISSIONS = {
    "good.py": ZEROS,
    "exit_fit.py": "import sys\nimport numpy as np\n\nclass M:\n    def fit(self, t, v, seed):\n        sys.exit(3)\n"
                   "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n",
    "exit0_predict.py": "import sys\n\nclass M:\n    def predict(self, batch, mask):\n        sys.exit(0)\n",
    "exit_import.py": "import sys\nsys.exit('bye')\n",
    "osexit_fit.py": "import os\nimport numpy as np\n\nclass M:\n    def fit(self, t, v, seed):\n        os._exit(5)\n"
                     "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n",
    "osexit_import.py": "import os\nos._exit(7)\n",
    "segfault_predict.py": "import ctypes\n\nclass M:\n    def predict(self, batch, mask):\n"
                           "        return ctypes.string_at(0)\n",
    "sigkill_build.py": "import os, signal\n\ndef build(info):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "interrupt_fit.py": "import numpy as np\n\nclass M:\n    def fit(self, t, v, seed):\n        raise KeyboardInterrupt\n"
                        "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n",
    "thread_left.py": "import threading, time\nimport numpy as np\n\nclass M:\n    def fit(self, t, v, seed):\n"
                      "        threading.Thread(target=time.sleep, args=(3600,)).start()\n"
                      "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n",
    "instance_name.py": "import numpy as np\n\nclass M:\n    def __init__(self):\n        self.name = 'other'\n"
                        "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n",
    "bad_name.py": "NAME = '../escape'\n" + ZEROS,
    "two_names.py": "import numpy as np\n\nclass A:\n    name = 'a'\n    def predict(self, b, m):\n        return 0\n\n"
                    "class B:\n    name = 'b'\n    def predict(self, b, m):\n        return 0\n\ndef build(info):\n"
                    "    return A()\n",
    "nul.py": "x = 1\x00\n",
}

RUN = ["run", "--protocol", "synth-inter", "--seeds", "1111", "--out", "{t}/out"]


def run_on(protocol, *rest):
    return ["run", "--protocol", protocol, "--out", "{t}/out", *rest]


# Jobs that fail in every way a submission can: one grid, one line each, the good model's results written.
FAILING_JOBS = {
    "exit_fit.py": "exit_fit.py: fit(train, valid, seed=1111) raised SystemExit: the submission called sys.exit(3) "
                   "(line 6)",
    "exit0_predict.py": "exit0_predict.py: condition T, seed 1111, samples 0-63: predict raised SystemExit: the "
                        "submission called sys.exit(0)",
    "osexit_fit.py": "osexit_fit.py, seed 1111: its process exited with status 5 (a call to os._exit, or a crash in "
                     "native code) during fit(train, valid, seed=1111)",
    "segfault_predict.py": "segfault_predict.py, seed 1111: its process was killed by signal SIGSEGV during "
                           "predict(batch, mask) on synth-inter, condition T, seed 1111",
    "sigkill_build.py": "sigkill_build.py, seed 1111: its process was killed by signal SIGKILL during build(info)",
    "interrupt_fit.py": "interrupt_fit.py, seed 1111: its process exited with status 130 (a call to os._exit, or a "
                        "crash in native code) during fit(train, valid, seed=1111)",
    "instance_name.py": "instance_name.py: the model built names itself 'other', but its results are stored as "
                        "'instance_name'",
}

# (id, argv, exit status, text the one line must hold, model folders a grid still writes)
CASES = [
    # submissions whose problem shows before any work (exit 2); jobs that fail are in FAILING_JOBS
    ("sys.exit at import", RUN + ["--model", "{t}/exit_import.py"], 2,
     "exit_import.py: importing the submission failed: SystemExit: the submission called sys.exit('bye') (line 2)", []),
    ("os._exit at import", RUN + ["--model", "{t}/osexit_import.py"], 2,
     "osexit_import.py: importing the submission: its process exited with status 7", []),
    ("in-process: sys.exit in fit", RUN + ["--model", "{t}/exit_fit.py", "{t}/good.py", "--in-process"], 1,
     "raised SystemExit: the submission called sys.exit(3)", ["good"]),
    ("name that escapes the results folder", RUN + ["--model", "{t}/bad_name.py"], 2,
     "NAME '../escape' is not a usable model name", []),
    ("two classes, two names", RUN + ["--model", "{t}/two_names.py"], 2,
     "model classes name themselves 'a', 'b'; set NAME at module level", []),
    ("NUL byte in the source", RUN + ["--model", "{t}/nul.py"], 2, "nul.py: syntax error", []),
    ("submission is a folder", RUN + ["--model", "{t}/folder.py"], 2, "is not a Python file", []),
    ("submission missing", RUN + ["--model", "{t}/none.py"], 2, "neither a file nor a bundled model", []),
    # protocols
    ("protocol is a folder", run_on("{t}", "--model", "mean"), 2, "is a folder, not a file", []),
    ("protocol unknown", run_on("nope", "--model", "mean"), 2, "unknown protocol 'nope'", []),
    ("protocol path missing", run_on("{t}/none.toml", "--model", "mean"), 2, "none.toml: no such file", []),
    ("protocol not TOML", run_on("{t}/garbage.toml", "--model", "mean"), 2, "not valid TOML", []),
    ("protocol with an unknown key", run_on("{t}/extra.toml", "--model", "mean"), 2, "colour", []),
    # data files
    ("--data missing", run_on("mosi-inter", "--model", "mean", "--data", "{t}/none.pkl"), 2,
     "data file {t}/none.pkl does not exist", []),
    ("--data not a pickle", run_on("mosi-inter", "--model", "mean", "--data", "{t}/garbage.pkl"), 2,
     "garbage.pkl", []),
    ("--data truncated pickle", run_on("mosi-inter", "--model", "mean", "--data", "{t}/truncated.pkl"), 2,
     "truncated.pkl", []),
    ("--data empty folder", run_on("mosi-inter", "--model", "mean", "--data", "{t}/folder.py"), 2,
     "folder.py", []),
    ("--data-dir is a file", run_on("mosi-inter", "--model", "mean", "--data-dir", "{t}/afile"), 2,
     "--data-dir {t}/afile: is a file, not a folder", []),
    ("MMSA's aligned file for an unaligned protocol",
     run_on("mosi-inter", "--model", "mean", "--data", "{t}/aligned_50.pkl"), 2,
     "aligned_50.pkl: the protocol needs unaligned_50 (unaligned audio and vision), but this data's "
     "text/audio/vision lengths are all 50: aligned data", []),
    ("aligned data under any file name for an unaligned protocol",
     run_on("mosi-inter", "--model", "mean", "--data", "{t}/synth.pkl"), 2,
     "synth.pkl: the protocol needs unaligned_50 (unaligned audio and vision), but this data's", []),
    ("an unaligned file for an aligned protocol", run_on("{t}/aligned.toml", "--model", "mean", "--data", "{t}/mosi.pkl"),
     2, "mosi.pkl: the protocol needs aligned_50 (audio and vision aligned to the text), but this data's "
        "text/audio/vision lengths are 50/30/40", []),
    ("a file of token ids only for a features protocol",
     run_on("synth-features-intra", "--model", "mean", "--data", "{t}/aligned_50.pkl"), 2,
     "aligned_50.pkl: the protocol needs aligned_50_features, with MMSA's token features (key 'text'), but this "
     "data has token ids only", []),
    # flags
    ("--batch-size 0", RUN + ["--model", "mean", "--batch-size", "0"], 2, "--batch-size must be a whole number >= 1, got 0", []),
    ("--batch-size -5", RUN + ["--model", "mean", "--batch-size", "-5"], 2, "got -5", []),
    ("--batch-size abc", RUN + ["--model", "mean", "--batch-size", "abc"], 2,
     "run: argument --batch-size: invalid int value: 'abc' (see msabench run --help)", []),
    ("unknown flag after run", RUN + ["--model", "mean", "--bogus"], 2,
     "run: unrecognized argument(s): --bogus (see msabench run --help)", []),
    ("missing --model", RUN, 2, "run: the following arguments are required: --model", []),
    ("unknown command", ["fly"], 2, "argument command: invalid choice: 'fly'", []),
    ("--gpus-per-job with serial", RUN + ["--model", "mean", "--gpus-per-job", "0"], 2,
     "--gpus-per-job applies to --executor ray only", []),
    ("--address with serial", RUN + ["--model", "mean", "--address", "auto"], 2, "--address applies to --executor ray only", []),
    ("--in-process with ray", RUN + ["--model", "mean", "--executor", "ray", "--in-process"], 2,
     "--in-process applies to --executor serial only", []),
    ("--cpus-per-job 0", RUN + ["--model", "mean", "--cpus-per-job", "0"], 2, "--cpus-per-job must be a whole number >= 1", []),
    ("--cpus-per-job 1.5 serially", RUN + ["--model", "mean", "--cpus-per-job", "1.5"], 2, "got 1.5", []),
    ("--cpus-per-job above the machine", RUN + ["--model", "mean", "--cpus-per-job", "4096"], 2,
     "this process may use only", []),
    ("seed outside the protocol", run_on("synth-inter", "--seeds", "7", "--model", "mean"), 2,
     "seed 7 is not one of the seeds of synth-inter", []),
    ("option out of range: hidden", RUN + ["--model", "prlf:hidden=-3"], 2, "option hidden must be a multiple of 4", []),
    ("option out of range: dropout", RUN + ["--model", "prlf:dropout=2"], 2, "option dropout must be in [0, 1), got 2.0", []),
    ("option unknown", RUN + ["--model", "prlf:colour=red"], 2, "colour", []),
    ("option of a model without options", RUN + ["--model", "mean:x=1"], 2, "model mean takes no options", []),
    ("train: option out of range", ["train", "--model", "prlf:hidden=-3"], 2, "option hidden must be a multiple of 4", []),
    ("train: a submission file", ["train", "--model", "{t}/good.py"], 2, "train takes bundled models", []),
    ("score: label outside MOSI's range", ["score", "{t}/label9.csv"], 2,
     "line 2, column 'label': '9.0' is outside the mosi label range [-3, 3]", []),
    ("score: label outside SIMS's range", ["score", "{t}/label2.csv", "--kind", "sims"], 2,
     "outside the sims label range [-1, 1]", []),
    ("score: a folder", ["score", "{t}"], 2, "is a folder, not a file", []),
    ("compare: --alpha 2", ["compare", "a", "b", "--protocol", "synth-inter", "--results", "{t}", "--alpha", "2"], 2,
     "--alpha must be between 0 and 1", []),
    ("compare: --resamples 5", ["compare", "a", "b", "--protocol", "synth-inter", "--results", "{t}", "--resamples", "5"],
     2, "--resamples must be >= 100", []),
    ("data synth: --seed -1", ["data", "synth", "--out", "{t}/out/s.pkl", "--seed", "-1"], 2, "--seed must be >= 0", []),
    # output and results paths
    ("--out is a file", RUN[:5] + ["--out", "{t}/afile", "--model", "mean"], 2, "--out {t}/afile: is a file, not a folder", []),
    ("--out under a file", RUN[:5] + ["--out", "{t}/afile/sub", "--model", "mean"], 2,
     "afile is a file, so no folder can be made under it", []),
    ("masks export --out a folder", ["masks", "export", "--protocol", "synth-intra", "--out", "{t}"], 2,
     "is a folder; give a file name", []),
    ("masks export --out under a file", ["masks", "export", "--protocol", "synth-intra", "--out", "{t}/afile/m.npz"], 2,
     "afile is a file, so no folder can be made under it", []),
    ("data synth --out under a file", ["data", "synth", "--out", "{t}/afile/s.pkl"], 2,
     "afile is a file, so no folder can be made under it", []),
    ("data convert into a file", ["data", "convert", "{t}/mosi.pkl", "{t}/afile", "--dataset", "mosi"], 2,
     "is a file, not a folder", []),
    ("data convert into a full folder", ["data", "convert", "{t}/mosi.pkl", "{t}", "--dataset", "mosi"], 2,
     "is not empty; refusing to overwrite it", []),
    ("data convert of nothing", ["data", "convert", "{t}/none.pkl", "{t}/out"], 2, "none.pkl: no such file", []),
    ("leaderboard: --results missing", ["leaderboard", "--results", "{t}/none", "--out", "{t}/out"], 2,
     "--results {t}/none: no such folder", []),
    ("leaderboard: --out a file", ["leaderboard", "--results", "{t}", "--out", "{t}/afile"], 2, "is a file, not a folder", []),
    ("compare: --results missing", ["compare", "a", "b", "--protocol", "synth-inter", "--results", "{t}/none"], 2,
     "no such folder", []),
    ("compare: models not in the results", ["compare", "a", "b", "--protocol", "synth-inter", "--results", "{t}"], 2,
     "", []),
    ("verify: --claims missing", ["verify", "--claims", "{t}/none.toml", "--results", "{t}"], 2,
     "--claims {t}/none.toml: no such file", []),
    ("init: file exists", ["init", "{t}/good.py"], 2, "the file exists", []),
    ("init: not a .py", ["init", "{t}/model.txt"], 2, "a submission is a Python file", []),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    t = tmp_path_factory.mktemp("hostile")
    for name, code in SUBMISSIONS.items():
        (t / name).write_text(code)
    (t / "folder.py").mkdir()
    (t / "afile").write_text("not a folder\n")
    (t / "garbage.toml").write_text("this is = = not toml\n")
    write_file(t / "extra.toml", """
        name = "x"
        version = 1
        dataset = "synth-mosi"
        seeds = [1]
        primary_metric = "MAE"
        colour = "red"
        [missing]
        kind = "inter"
        """)
    (t / "garbage.pkl").write_bytes(bytes(range(256)))  # fixed bytes; fuzzing lives in test_mmsa
    write_pickle(t / "mosi.pkl", small_raw(aligned=False, audio_len=30, vision_len=40))
    write_pickle(t / "aligned_50.pkl", small_raw())
    write_pickle(t / "synth.pkl", small_raw())  # the same aligned data under a name that says nothing
    write_file(t / "aligned.toml", """
        name = "aligned"
        version = 1
        dataset = "mosi"
        variant = "aligned_50"
        seeds = [1]
        primary_metric = "MAE"
        [missing]
        kind = "inter"
        """)
    (t / "truncated.pkl").write_bytes((t / "mosi.pkl").read_bytes()[:1000])
    (t / "label9.csv").write_text("prediction,label\n0.5,9.0\n")
    (t / "label2.csv").write_text("prediction,label\n0.5,2.0\n")
    return t


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env={**os.environ, "MSABENCH_DATA": ""}, **kw)


@pytest.mark.parametrize("argv,status,needle,written", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(hostile, argv, status, needle, written):
    out = hostile / "out"
    shutil.rmtree(out, ignore_errors=True)
    args = [a.replace("{t}", str(hostile)) for a in argv]
    proc = cli(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("msabench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle.replace("{t}", str(hostile)) in lines[0]
    # nothing half-written: only complete results of the models that succeeded, no temporary files
    if out.exists():
        units = results.find_units(out)
        assert sorted({u.parent.name for u in units}) == sorted(written), proc.stderr
        for u in units:
            assert results.read_unit(u).predictions.size > 0
        assert not [p for p in out.rglob(".*")], list(out.rglob(".*"))
    else:
        assert not written


def test_failing_jobs_one_line_each_and_the_rest_of_the_grid_completes(hostile, tmp_path):
    """sys.exit, os._exit, a segfault, SIGKILL, KeyboardInterrupt, a name mismatch: each fails its own job."""
    models = [hostile / name for name in FAILING_JOBS]
    proc = cli("run", "--protocol", "synth-inter", "--seeds", "1111", "--out", tmp_path, "--model",
               models[0], hostile / "good.py", *models[1:])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == len(FAILING_JOBS), proc.stderr
    assert "Traceback" not in proc.stderr
    for line, (name, needle) in zip(lines, FAILING_JOBS.items()):
        assert line.startswith("msabench: error: ") and needle in line and name in line, (needle, line)
    assert lines[-1].endswith(f"({len(FAILING_JOBS)} of {len(FAILING_JOBS) + 1} job(s) failed; the other results are written)")
    units = results.find_units(tmp_path)
    assert [(u.parent.name, u.name) for u in units] == [("good", "seed-1111")]
    assert results.read_unit(units[0]).predictions.size == 7 * 686
    assert not list(tmp_path.rglob(".*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_permission_denied_is_one_line(hostile, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = cli("run", "--protocol", "synth-inter", "--model", "mean", "--out", locked / "out")
        assert proc.returncode == 2 and "permission denied" in proc.stderr and len(proc.stderr.splitlines()) == 1
    finally:
        locked.chmod(0o700)


def test_no_gpu_request_is_refused_under_ray(hostile, tmp_path):
    """Ray would wait forever for a GPU this machine does not have."""
    pytest.importorskip("ray")
    proc = cli("run", "--protocol", "synth-inter", "--model", "mean", "--executor", "ray", "--gpus-per-job", "0.5",
               "--out", tmp_path / "out")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no node of the Ray cluster has that" in proc.stderr and not (tmp_path / "out").exists()


SLOW = """
import time
import numpy as np

class M:
    def fit(self, train, valid, seed):
        if seed == 1112:
            time.sleep(600)
    def predict(self, batch, mask):
        return np.zeros(len(batch.ids))
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = open(f"/proc/{pid}/stat").read() if os.path.exists(f"/proc/{pid}/stat") else ""
    return bool(stat) and stat.split()[2] != "Z"


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_serial_run_keeps_finished_work_and_leaves_no_worker(tmp_path, how):
    slow = write_file(tmp_path / "slow.py", SLOW)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "msabench", "run", "--protocol", "synth-inter", "--model", str(slow), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and len(results.find_units(out)) < 1:
        time.sleep(0.2)
    time.sleep(1.0)  # the second job is asleep in fit
    workers = _children(proc.pid)
    assert workers, "the file submission's job runs in a worker process"
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    if how in ("SIGINT", "SIGTERM"):  # one line: what finished and what to do
        assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[how], err
        assert err.strip().splitlines()[-1] == (
            f"msabench: interrupted; 1 result(s) finished in this run are kept in {out}: synth-inter/slow/seed-1111; "
            "re-run the same command to complete the rest (finished seeds are re-used)"), err
    deadline = time.time() + 10  # an orphaned worker notices within a second or two
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
    assert [u.name for u in results.find_units(out)] == ["seed-1111"]
    assert not list(out.rglob(".*"))
