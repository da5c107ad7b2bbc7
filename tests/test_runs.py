"""Model identity by declared version: a refactor stales no stored run, drift stays visible (`msabench runs`)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msabench import executors, protocols, results, runs, submission
from msabench.errors import MsabenchError

from conftest import ROOT, small_dataset, write_file

PROBE = "from msabench import submission as s; x = s.load('prlf:amre=off'); print(x.sha256, x.code_sha256)"


def test_a_whitespace_edit_of_the_shared_code_changes_the_code_not_the_identity(tmp_path):
    """A copy of the package with a blank line added to training.py and torch_baseline.py, in a fresh
    interpreter: the results key of a bundled model is the same, the recorded code is not."""
    copy = tmp_path / "pkg"
    shutil.copytree(ROOT / "msabench", copy / "msabench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("training.py", "torch_baseline.py"):
        f = copy / "msabench" / name
        f.write_text(f.read_text() + "\n")

    def probe(where):
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=where, capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"})
        return out.stdout.split()

    here, edited = probe(ROOT), probe(copy)
    assert here[0] == edited[0] and here[1] != edited[1]
    assert here == [submission.load("prlf:amre=off").sha256, submission.load("prlf:amre=off").code_sha256]


def test_identity_is_name_version_and_options():
    a, b = submission.load("text-only"), submission.load("text-only:hidden=16")
    assert a.sha256 == submission.identity("text-only", a.version, a.options) and a.version == 1
    assert a.sha256 != b.sha256 and a.code_sha256 != a.sha256
    assert submission.identity("text-only", 2, a.options) != a.sha256  # bumping VERSION re-keys its results
    for name in ("prlf", "prlf[amre=False]", "mmsa-lf_dnn", "late-fusion", "mean"):
        assert submission.load(submission.spec_of(name)).name == name
    assert submission.spec_of("my_model") is None and submission.spec_of("prlf[nope=1]") is None


def test_an_option_added_later_leaves_the_identity_at_its_default():
    """A shared option added after runs were stored (`recipe`) is repr=False: at its default the key is the
    one computed before it existed (name, version, the older options' repr); set, it enters the key."""
    import dataclasses
    import hashlib

    sub = submission.load("lnln")
    later = [f.name for f in dataclasses.fields(sub.options) if not f.repr]
    assert "recipe" in later and f"{later[0]}=" not in repr(sub.options)
    before = hashlib.sha256(f"bundled:lnln|version={sub.version}|{sub.options!r}".encode()).hexdigest()
    assert sub.sha256 == before
    authors = submission.load("lnln:recipe=authors")
    assert repr(authors.options) == repr(sub.options) and authors.sha256 != sub.sha256


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    data = small_dataset(sizes=(120, 40, 60))
    p = protocols.load("synth-intra")
    executors.run(p, "mean", out=tmp / "results", dataset=data, seeds=[1111])
    user = write_file(tmp / "mine.py", "import numpy as np\nNAME = 'mine'\n\nclass M:\n    def predict(self, batch, mask):"
                                       "\n        return np.zeros(len(batch))\n\n\ndef build(info):\n    return M()\n")
    executors.run(p, user, out=tmp / "results", dataset=data, seeds=[1111])
    return tmp / "results", user


def _manifest(root, model):
    return results.unit_dir(root, "synth-intra", model, 1111) / "manifest.json"


def test_runs_check_tells_current_changed_and_stale(folder, tmp_path):
    src, user = folder
    root = tmp_path / "r"
    shutil.copytree(src, root)
    state = {s.model: s.state for s in runs.check(root)}
    assert state == {"mean": runs.CURRENT, "mine": runs.CURRENT}

    m = json.loads(_manifest(root, "mean").read_text())
    assert m["model_version"] == 1 and m["code_sha256"] == submission.load("mean").code_sha256
    _manifest(root, "mean").write_text(json.dumps({**m, "code_sha256": "0" * 64}, indent=1))
    (changed,) = [s for s in runs.check(root) if s.model == "mean"]
    assert changed.state == runs.CHANGED and changed.rerun == ""
    # `msabench run` re-uses it (same key): nothing is re-run, the unit is not rewritten
    before = _manifest(root, "mean").read_text()
    executors.run("synth-intra", "mean", out=root, dataset=small_dataset(sizes=(120, 40, 60)), seeds=[1111])
    assert _manifest(root, "mean").read_text() == before

    _manifest(root, "mean").write_text(json.dumps({**m, "submission_sha256": "1" * 64}, indent=1))
    original = user.read_text()
    user.write_text(original + "# edited\n")
    try:
        state = {s.model: s.state for s in runs.check(root)}
    finally:
        user.write_text(original)
    assert state == {"mean": runs.STALE, "mine": runs.STALE}


def test_runs_rerun_compares_predictions(folder, tmp_path):
    """The re-run uses the protocol's own data: the generated synth-mosi, not the test's small copy."""
    root = tmp_path / "r"
    executors.run("synth-intra", "mean", out=root, seeds=[1111])
    m = json.loads(_manifest(root, "mean").read_text())
    _manifest(root, "mean").write_text(json.dumps({**m, "code_sha256": "0" * 64}, indent=1))
    (s,) = runs.check(root, rerun=True)
    assert s.state == runs.CHANGED and "predictions bit-identical" in s.rerun


def test_upgrade_rekeys_old_manifests_and_keeps_their_code(folder, tmp_path):
    src, _ = folder
    root = tmp_path / "r"
    shutil.copytree(src, root)
    path = _manifest(root, "mean")
    m = json.loads(path.read_text())
    old = {k: v for k, v in m.items() if k not in ("code_sha256", "model_version")}
    old["submission_sha256"] = "a" * 64  # the code digest older msabench keyed results by
    path.write_text(json.dumps(old, indent=1))
    assert {s.model: s.state for s in runs.check(root)}["mean"] == runs.OLD
    done = runs.upgrade(root)
    assert [Path(d).parent.name for d in done] == ["mean"]
    new = json.loads(path.read_text())
    assert new["submission_sha256"] == submission.load("mean").sha256 and new["code_sha256"] == "a" * 64
    assert {s.model: s.state for s in runs.check(root)}["mean"] == runs.CHANGED
    assert runs.upgrade(root) == []  # nothing left to upgrade


def test_runs_cli(folder, tmp_path):
    src, _ = folder
    proc = subprocess.run([sys.executable, "-m", "msabench", "runs", "--results", str(src)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "2 current" in proc.stdout and "bundled mean v1" in proc.stdout
    check = subprocess.run([sys.executable, "-m", "msabench", "runs", "--check", "--results", str(src)],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0 and check.stdout == proc.stdout
    bad = subprocess.run([sys.executable, "-m", "msabench", "runs", "--results", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "none" in bad.stderr


def test_a_bundled_model_must_declare_its_version(tmp_path, monkeypatch):
    base = tmp_path / "baselines"
    base.mkdir()
    (base / "noversion.py").write_text((ROOT / "msabench" / "baselines" / "mean.py").read_text()
                                       .replace("VERSION = 1", "VERSIONS = 1"))
    monkeypatch.setattr(submission, "BASELINE_DIR", base)
    with pytest.raises(MsabenchError, match="must declare VERSION"):
        submission.load("noversion")


def test_the_leaderboard_leaves_out_stale_runs_and_counts_changed_code(folder, tmp_path):
    from msabench import board, leaderboard

    src, _ = folder
    root = tmp_path / "r"
    shutil.copytree(src, root)
    m = json.loads(_manifest(root, "mean").read_text())
    _manifest(root, "mean").write_text(json.dumps({**m, "submission_sha256": "1" * 64}, indent=1))
    mine = json.loads(_manifest(root, "mine").read_text())
    _manifest(root, "mine").write_text(json.dumps({**mine, "code_sha256": "2" * 64}, indent=1))
    readme = leaderboard.write(root, tmp_path / "board", settings=board.Settings(n_resamples=200,
                                                                                       figures=False)).read_text()
    assert "Left out (stale" in readme and "Mean (constant) on synth-intra" in readme
    assert "| Mean (constant) " not in readme and "| mine " in readme and "| 1 " in readme
    assert "1 of 1 results were made by code that differs from today's" in readme
