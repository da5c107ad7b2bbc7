"""More hostile inputs, found on the real command line: each gives one line `msabench: error: ...` naming
what is wrong and where, the documented exit status, no traceback and nothing left behind.

Families: protocol files nested thousands deep, protocols that share a name, `hub:` data without a
network, seeds out of range, CPU counts that are not finite, resample counts that do not fit in memory,
unwritable outputs, failed writes, repeated flags, `--data` next to `--data-dir`, and error lines
hundreds of kilobytes long.
"""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, small_dataset, write_file


def cli(*args, env=None, cwd=None, **kw):
    """The command line in a subprocess, as test_hostile runs it (no MSABENCH_DATA), with extra environment."""
    full_env = {**os.environ, "MSABENCH_DATA": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600, env=full_env, **kw)


def one_line(proc, status, *needles):
    """The one error line of `proc`, checked: exit status, one line, its prefix, no traceback, every needle."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("msabench: error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0][:2000])
    return lines[0]


def nothing_in(folder: Path):
    """No file or folder was left in `folder` (temporary files included)."""
    assert not folder.exists() or not any(folder.iterdir()), sorted(folder.rglob("*"))


PROTOCOL = """
name = "{name}"
version = 1
dataset = "synth-mosi"
seeds = [1111]
primary_metric = "Non0_acc_2"
[missing]
kind = "inter"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("hostile-inputs")
    depth = 4000
    (t / "deep-arrays.toml").write_text("x = " + "[" * depth + "]" * depth + "\n")
    (t / "deep-tables.toml").write_text("x = " + "{a = " * depth + "1" + "}" * depth + "\n")
    (t / "deep-missing.toml").write_text(PROTOCOL.format(name="deep").replace(
        "[missing]\nkind = \"inter\"\n", "missing = " + "[" * 3000 + "]" * 3000 + "\n"))
    write_file(t / "my" / "synth-intra.toml", PROTOCOL.format(name="synth-intra"))
    write_file(t / "a" / "twin.toml", PROTOCOL.format(name="twin"))
    write_file(t / "b" / "twin.toml", PROTOCOL.format(name="twin"))
    (t / "results").mkdir()
    (t / "long_import.py").write_text("raise ValueError('x' * 200_000)\n")
    (t / "long_fit.py").write_text("import numpy as np\n\nclass M:\n    def fit(self, train, valid, seed):\n"
                                   "        raise ValueError('y' * 200_000)\n\n    def predict(self, batch, mask):\n"
                                   "        return np.zeros(len(batch.ids))\n")
    return t


@pytest.fixture
def out(tmp_path):
    """Where a test's command may write: it must stay empty."""
    return tmp_path / "out"


def fill(argv, t, out=None):
    return [str(a).replace("{t}", str(t)).replace("{out}", str(out)) for a in argv]


# ------------------------------------------------------------------ 1. protocol files nested thousands deep

@pytest.mark.parametrize("command", [
    ["run", "--protocol", "{t}/%s", "--model", "mean", "--out", "{out}"],
    ["masks", "export", "--protocol", "{t}/%s", "--out", "{out}/m.npz"],
], ids=["run", "masks export"])
@pytest.mark.parametrize("name", ["deep-arrays.toml", "deep-tables.toml", "deep-missing.toml"])
def test_deeply_nested_protocol_is_one_line(files, command, name, out):
    argv = fill([a.replace("%s", name) for a in command], files, out)
    one_line(cli(*argv), 2, f"{files / name}: tables or arrays nested too deeply to read")
    nothing_in(out)


# ------------------------------------------------------------------ 2. two protocols with one name in one grid

@pytest.mark.parametrize("protocols,first,second", [
    (["synth-intra", "{t}/my/synth-intra.toml"], "synth-intra (", "{t}/my/synth-intra.toml"),
    (["{t}/my/synth-intra.toml", "synth-intra"], "{t}/my/synth-intra.toml", "synth-intra ("),
    (["{t}/a/twin.toml", "{t}/b/twin.toml"], "{t}/a/twin.toml", "{t}/b/twin.toml"),
], ids=["shipped then file", "file then shipped", "two files"])
def test_protocols_sharing_a_name_are_refused_before_any_work(files, protocols, first, second, out):
    proc = cli("run", "--protocol", *fill(protocols, files, out), "--model", "mean", "--out", out)
    line = one_line(proc, 2, "--protocol: ", "both define protocol", *fill([first, second], files, out))
    assert line.index(fill([first], files, out)[0]) < line.index(fill([second], files, out)[0])
    if "synth-intra (" in (first, second):  # the shipped one is named with its file
        assert str(ROOT / "protocols" / "synth-intra.toml") in line
    nothing_in(out)


def test_the_same_protocol_twice_is_run_once(files, out):
    """Not a clash: one file given twice. Seen in the seed check, which names each protocol of the plan."""
    proc = cli("run", "--protocol", "synth-intra", "synth-intra", "--seeds", "7", "--model", "mean",
               "--out", out)
    line = one_line(proc, 2, "seed 7 is not one of the seeds of synth-intra")
    assert line.count("synth-intra") == 1
    nothing_in(out)


# ------------------------------------------------------------------ 3. hub: data without a network

@pytest.mark.parametrize("env,needle", [
    ({"HF_HUB_OFFLINE": "1"}, "(HF_HUB_OFFLINE is set)"),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "(no connection to http://127.0.0.1:9 opened in 3 s)"),  # blocked
], ids=["HF_HUB_OFFLINE", "blocked network"])
def test_hub_data_offline_is_refused_at_once(files, tmp_path, env, needle, out):
    hf_vars = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_DATASETS_CACHE",
               "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    full = {k: v for k, v in os.environ.items() if k not in hf_vars}
    full.update(env, HF_HOME=str(tmp_path / "hf"), MSABENCH_DATA="")  # an empty cache
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "msabench", "run", "--protocol", "synth-intra", "--model", "mean",
                           "--data", "hub:msabench-test/no-such-dataset", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=full)
    took = time.monotonic() - t0
    one_line(proc, 2, "Hugging Face Hub dataset msabench-test/no-such-dataset: this machine cannot reach the Hub",
             needle, "does not hold it", "--data FOLDER")
    assert "Retry" not in proc.stderr and took < 60, (took, proc.stderr)  # no half-minute of retries
    nothing_in(out)


def test_hub_id_that_is_a_path_is_refused(files, out):
    one_line(cli("run", "--protocol", "synth-intra", "--model", "mean", "--data", "hub:../elsewhere",
                 "--out", out), 2, "hub:../elsewhere: not a Hub dataset id; write hub:OWNER/NAME")
    nothing_in(out)


def test_hub_data_offline_but_cached_is_read_in_offline_mode(tmp_path, monkeypatch):
    """Offline with the dataset in the local cache: `datasets` is called in offline mode (no retries)."""
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import constants

    from msabench.data import hf

    monkeypatch.setattr(hf, "_hub_reachable", lambda timeout=hf.HUB_TIMEOUT: False)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(hf.MsabenchError, match="cannot reach the Hub .* does not hold it"):
        hf.load_hub("someone/cached-set")  # not cached yet
    (tmp_path / "datasets" / "someone___cached-set" / "default" / "0.0.0" / "abc").mkdir(parents=True)
    ds = small_dataset(sizes=(6, 3, 4))
    seen = []

    def load_dataset(repo_id, revision=None):
        seen.append((repo_id, datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return hf.to_hf(ds)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    got = hf.load_hub("someone/cached-set", name=ds.name, variant=ds.variant, kind=ds.kind)
    assert seen == [("someone/cached-set", True, True)]
    assert got.fingerprint == ds.fingerprint and got.source == "hf://someone/cached-set"
    assert datasets.config.HF_HUB_OFFLINE is False and constants.HF_HUB_OFFLINE is False  # restored


# ------------------------------------------------------------------ 4. seeds out of range

@pytest.mark.parametrize("seed", ["-1", str(2**32)])
@pytest.mark.parametrize("command", [
    ["train", "--model", "text-only", "--seeds", "1111", "%s"],
    ["run", "--protocol", "synth-intra", "--model", "mean", "--out", "{out}", "--seeds", "%s"],
    ["compare", "a", "b", "--protocol", "synth-intra", "--results", "{t}/results", "--seeds", "%s"],
], ids=["train", "run", "compare"])
def test_seed_out_of_range_is_refused_before_any_training(files, tmp_path, command, seed, out):
    cache = tmp_path / "cache"
    argv = fill([a.replace("%s", seed) for a in command], files, out)
    proc = cli(*argv, env={"MSABENCH_CACHE": str(cache)})
    one_line(proc, 2, f"--seeds must be whole numbers in [0, 2^32) (0 to 4294967295), got {seed}")
    assert "ready in" not in proc.stdout  # seed 1111 was not trained first either
    nothing_in(cache)
    nothing_in(out)


# ------------------------------------------------------------------ 5. --cpus-per-job that is not a finite number

@pytest.mark.parametrize("value,shown", [("inf", "inf"), ("nan", "nan"), ("1e400", "inf"), ("-inf", "-inf"),
                                         ("-1", "-1")])
@pytest.mark.parametrize("executor", ["serial", "ray"])
def test_cpus_per_job_not_a_finite_positive_number(files, value, shown, executor, out):
    """Before: inf and 1e400 gave OverflowError (int(inf)) in either executor."""
    proc = cli("run", "--protocol", "synth-intra", "--model", "mean", "--out", out, "--executor", executor,
               f"--cpus-per-job={value}")
    one_line(proc, 2, "--cpus-per-job must be a ", f"got {shown}")
    nothing_in(out)


def test_cpus_per_job_serially_is_a_whole_number(files, out):
    proc = cli("run", "--protocol", "synth-intra", "--model", "mean", "--out", out, "--cpus-per-job", "1.5")
    one_line(proc, 2, "--cpus-per-job must be a whole number >= 1", "got 1.5")


def test_gpus_per_job_not_finite(files, out):
    proc = cli("run", "--protocol", "synth-intra", "--model", "mean", "--out", out, "--executor", "ray",
               "--gpus-per-job", "inf")
    one_line(proc, 2, "--gpus-per-job must be a finite number", "got inf")


# ------------------------------------------------------------------ 6. --resamples that would not fit in memory

STATS = {
    "compare": ["compare", "a", "b", "--protocol", "synth-intra", "--results", "{t}/results"],
    "leaderboard": ["leaderboard", "--results", "{t}/results", "--out", "{out}"],
    "verify": ["verify", "--claim", "a > b on synth-intra: MAE +0.1", "--results", "{t}/results"],
}


@pytest.mark.parametrize("command", list(STATS))
@pytest.mark.parametrize("value", ["100001", str(10**12)])
def test_resamples_above_the_cap(files, command, value, out):
    proc = cli(*fill(STATS[command], files, out), "--resamples", value)
    one_line(proc, 2, "--resamples must be <= 100,000", f"got {int(value):,}")
    nothing_in(out)


@pytest.mark.parametrize("command", list(STATS))
def test_resamples_not_a_whole_number(files, command, out):
    proc = cli(*fill(STATS[command], files, out), "--resamples", "1e12")
    one_line(proc, 2, f"{command}: argument --resamples: invalid int value: '1e12'")
    nothing_in(out)


# ------------------------------------------------------------------ 7a. outputs that cannot be written

needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")


@needs_proc
@pytest.mark.parametrize("argv,flag", [
    (["run", "--protocol", "synth-intra", "--model", "mean", "--out", "/proc/msabench-out"], "--out /proc/msabench-out"),
    (["masks", "export", "--protocol", "synth-intra", "--out", "/proc/m.npz"], "--out /proc/m.npz"),
    (["data", "synth", "--out", "/proc/sub/s.pkl"], "--out /proc/sub/s.pkl"),
    (["leaderboard", "--results", "{t}/results", "--out", "/proc/lb"], "--out /proc/lb"),
    (["init", "/proc/mine.py"], "init /proc/mine.py"),
], ids=["run", "masks export", "data synth", "leaderboard", "init"])
def test_unwritable_out_is_a_user_error(files, argv, flag, out):
    """/proc refuses new files even to root, whom os.access would tell it may write there."""
    one_line(cli(*fill(argv, files, out)), 2, f"{flag}: cannot write in /proc")


def test_out_onto_a_pipe_is_refused(tmp_path):
    """os.replace would swap a device or pipe for a plain file (`--out /dev/null`, as root: for everyone).
    Tested on a pipe of its own, so that a regression cannot break this machine's /dev/null."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for argv in (["masks", "export", "--protocol", "synth-intra", "--out", pipe], ["data", "synth", "--out", pipe]):
        one_line(cli(*argv), 2, f"--out {pipe}: exists and is not a regular file")
        assert pipe.is_fifo()
    assert sorted(tmp_path.iterdir()) == [pipe]


# ------------------------------------------------------------------ 7b. a failed write names the user's path

def _small_file_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # Python ignores SIGXFSZ: writes fail with EFBIG


@pytest.mark.parametrize("argv,name", [
    (["data", "synth", "--out", "{out}/s.pkl"], "s.pkl"),
    (["masks", "export", "--protocol", "synth-intra", "--out", "{out}/m.npz"], "m.npz"),
], ids=["data synth", "masks export"])
def test_failed_write_names_the_users_path_not_the_temporary_file(tmp_path, argv, name):
    out = tmp_path / "out"
    out.mkdir()
    proc = cli(*[a.replace("{out}", str(out)) for a in argv], preexec_fn=_small_file_limit)
    line = one_line(proc, 1, f"{out / name}: cannot write it: File too large")
    assert f".{name}." not in line  # the temporary file's name
    nothing_in(out)


# ------------------------------------------------------------------ 7c. repeated flags accumulate

@pytest.mark.parametrize("argv,needle", [
    (["--protocol", "nope", "--protocol", "synth-intra", "--model", "mean"], "unknown protocol 'nope'"),
    (["--protocol", "synth-intra", "--model", "{t}/none.py", "--model", "mean"], "none.py"),
    (["--protocol", "synth-intra", "--protocol", "{t}/my/synth-intra.toml", "--model", "mean"],
     "both define protocol 'synth-intra'"),
], ids=["--protocol twice", "--model twice", "--protocol twice, one name"])
def test_repeated_protocol_and_model_flags_accumulate(files, argv, needle, out):
    """Before: the second flag replaced the first, so the bad first value was never looked at."""
    proc = cli("run", *fill(argv, files, out), "--out", out)
    one_line(proc, 2, needle)
    nothing_in(out)


def test_repeated_flags_are_parsed_into_one_list():
    from msabench import cli as cli_mod

    args = cli_mod.parser().parse_args(["run", "--protocol", "a", "b", "--model", "m", "--protocol", "c",
                                        "--model", "n", "o"])
    assert args.protocol == ["a", "b", "c"] and args.model == ["m", "n", "o"]


# ------------------------------------------------------------------ 7d. --data next to --data-dir

@pytest.mark.parametrize("argv", [
    ["run", "--protocol", "synth-intra", "--model", "mean", "--out", "{out}"],
    ["train", "--model", "text-only"],
    ["masks", "export", "--protocol", "synth-intra", "--out", "{out}/m.npz"],
], ids=["run", "train", "masks export"])
def test_data_and_data_dir_together_are_refused(files, tmp_path, argv, out):
    cache = tmp_path / "cache"
    proc = cli(*fill(argv, files, out), "--data", files / "x.pkl", "--data-dir", files, env={"MSABENCH_CACHE": str(cache)})
    one_line(proc, 2, f"--data {files / 'x.pkl'} and --data-dir {files}: give one of them")
    nothing_in(out)
    nothing_in(cache)


# ------------------------------------------------------------------ 7e. error lines hundreds of kilobytes long

def _cut(line, end=""):
    """Cut to 1000 characters in the middle: the start and the end (what is wrong) kept."""
    assert len(line) <= 1000, len(line)
    assert " characters cut) ... " in line, line[-300:]
    assert line.endswith(end), line[-300:]


@pytest.mark.parametrize("argv,start,end", [
    (["run", "--protocol", "synth-intra", "--model", "mean", "--out", "{out}", "--batch-size", "z" * 100_000],
     "msabench: error: run: argument --batch-size: invalid int value: 'zzz", "zz' (see msabench run --help)"),
    (["run", "--protocol", "synth-intra", "--model", "mean", "--out", "{out}", "--bogus", "z" * 100_000],
     "msabench: error: run: unrecognized argument(s): --bogus zzz", "zz (see msabench run --help)"),
    (["run", "--protocol", "p" * 100_000, "--model", "mean", "--out", "{out}"],
     "msabench: error: unknown protocol 'ppp", "synth-unaligned-intra)"),
    (["run", "--protocol", "synth-intra", "--model", "mean", "--out", "{t}/" + "q" * 100_000],
     "msabench: error: --out {t}/qqq", "qq: File name too long"),
    (["run", "--protocol", "synth-inter", "--seeds", "1111", "--model", "{t}/long_import.py", "--out", "{out}"],
     "msabench: error: {t}/long_import.py: importing the submission failed: ValueError: xxx", ""),
], ids=["argparse value", "unknown argument", "MsabenchError", "path too long", "submission import"])
def test_long_error_line_is_cut(files, argv, start, end, out):
    proc = cli(*fill(argv, files, out))
    line = one_line(proc, 2)
    assert line.startswith(fill([start], files, out)[0]), line[:300]
    _cut(line, end)
    nothing_in(out)


def test_long_failed_job_line_is_cut_and_keeps_its_tail(files, out):
    """A job whose fit raises a 200 KB message: its line is cut, the count of failed jobs still ends it."""
    proc = cli("run", "--protocol", "synth-inter", "--seeds", "1111", "--model", files / "long_fit.py", "mean",
               "--in-process", "--out", out)
    line = one_line(proc, 1, "long_fit.py", "ValueError: yyy")
    _cut(line, "yyy (line 5) (1 of 2 job(s) failed; the other results are written)")
    assert sorted(p.name for p in (out / "synth-inter").iterdir()) == ["mean"]  # the other job's results


def test_clip():
    from msabench.cli import _clip

    assert _clip("a" * 1000) == "a" * 1000
    line = "where: " + "a" * 200_000 + " what"
    cut = _clip(line)
    head, rest = cut.split(" ... (", 1)
    count, tail = rest.split(" characters cut) ... ")
    assert len(cut) <= 1000 and cut.startswith("where: aaa") and cut.endswith("aaa what")
    assert len(head) + int(count) + len(tail) == len(line)
    assert len(_clip("b" * 5000, 300)) <= 300
