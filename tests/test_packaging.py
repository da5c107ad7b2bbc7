"""The package as users install it: a wheel built from the project, installed into a fresh virtual
environment outside the checkout, finds its protocols and example submission and runs."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


def sh(*args, cwd, env=None, timeout=600):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of this checkout installed into a fresh venv; its dependencies are this environment's (a .pth)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # built from a copy: a build writes build/ and *.egg-info next to pyproject.toml
    common = shutil.ignore_patterns(".*", "build", "dist", "results", "*.egg-info", "__pycache__", "benchmarks")

    def ignore(folder, names):  # of leaderboard/, only the published-results registry and the runs' index are packaged
        skip = common(folder, names)
        return skip | ({n for n in names if n not in ("published", "index")} if Path(folder).name == "leaderboard"
                       else set())

    shutil.copytree(ROOT, source, ignore=ignore)
    sh(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
       cwd=tmp)
    wheel = next((tmp / "dist").glob("msabench-*.whl"))
    venv = tmp / "venv"
    sh(sys.executable, "-m", "venv", venv, cwd=tmp)
    python = venv / "bin" / "python"
    sh(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp)
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip())
    # numpy, torch, pyarrow ... from this environment: a path entry, not a site folder, so this environment's
    # editable msabench (a .pth hook) is not seen and the wheel's copy is the one imported
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MSABENCH_CACHE"] = str(tmp / "cache")
    work = tmp / "elsewhere"
    work.mkdir()
    return {"wheel": wheel, "bin": venv / "bin", "python": python, "env": env, "cwd": work, "site": site}


def test_wheel_holds_the_protocols_and_the_example(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = sorted(Path(n).name for n in names if n.startswith("msabench/shipped/protocols/"))
    assert shipped == sorted(p.name for p in (ROOT / "protocols").glob("*.toml"))
    assert "msabench/shipped/submissions/example.py" in names
    assert "msabench/shipped/index/runs.sha256" in names  # what `msabench board pull` checks the runs against
    registry = sorted(Path(n).name for n in names if n.startswith("msabench/shipped/published/"))
    assert registry == sorted(p.name for p in (ROOT / "leaderboard" / "published").glob("*.toml")) and registry


def test_installed_package_runs_outside_the_checkout(installed):
    env, cwd, bin_ = installed["env"], installed["cwd"], installed["bin"]
    where = sh(installed["python"], "-c", "import msabench, msabench.protocols as p; print(msabench.__file__); "
               "print(p.PROTOCOL_DIR)", cwd=cwd, env=env).stdout.split()
    assert all(Path(w).is_relative_to(installed["site"]) for w in where), where
    listing = sh(bin_ / "msabench", "protocols", cwd=cwd, env=env).stdout
    for p in (ROOT / "protocols").glob("*.toml"):
        assert p.stem in listing
    assert "| lnln " in sh(bin_ / "msabench", "published", "--protocol", "mosi-intra", cwd=cwd, env=env).stdout
    sh(bin_ / "msabench", "init", "mymodel.py", cwd=cwd, env=env)
    assert (cwd / "mymodel.py").read_bytes() == (ROOT / "submissions" / "example.py").read_bytes()
    run = sh(bin_ / "msabench", "run", "--protocol", "synth-inter", "--model", "mymodel.py", "mean", "--seeds", "1111",
             "--out", "res", cwd=cwd, env=env)
    assert "mymodel on synth-inter" in run.stdout and "mean on synth-inter" in run.stdout
    assert (cwd / "res" / "synth-inter" / "mymodel" / "seed-1111" / "predictions.parquet").is_file()


BLOCK = '''"""Makes this venv a core install: torch, matplotlib and the other extras cannot be imported."""
import sys


class _Absent:
    EXTRAS = ("torch", "matplotlib", "transformers", "ray", "mmsa", "datasets")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Absent())
'''


def test_the_core_install_reads_compares_verifies_and_renders_without_torch(installed, tmp_path):
    """The wheel asks for torch and matplotlib only with [run]; without them (imports made impossible),
    stored results are compared, claims verified and a board written (HTML too, figures left out)."""
    import email

    meta = email.message_from_string(zipfile.ZipFile(installed["wheel"]).read(
        next(n for n in zipfile.ZipFile(installed["wheel"]).namelist() if n.endswith(".dist-info/METADATA"))).decode())
    requires = meta.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    assert core and not [r for r in core if r.split()[0].split(">")[0].split("=")[0] in ("torch", "matplotlib")], core
    assert any(r.startswith("torch") and 'extra == "run"' in r for r in requires), requires
    (installed["site"] / "_core_only.py").write_text(BLOCK)
    (installed["site"] / "zz_core_only.pth").write_text("import _core_only\n")
    try:
        env, cwd, bin_ = installed["env"], installed["cwd"], installed["bin"]
        proc = subprocess.run([installed["python"], "-c", "import torch"], capture_output=True, text=True, env=env,
                              cwd=cwd)
        assert proc.returncode != 0 and "torch" in proc.stderr
        results = tmp_path / "runs"
        for model in ("derl", "prlf", "lnln", "mean"):
            shutil.copytree(ROOT / "leaderboard" / "runs" / "synth-intra" / model, results / "synth-intra" / model)
        out = sh(bin_ / "msabench", "compare", "derl", "prlf", "--protocol", "synth-intra", "--results", results,
                 "--resamples", "300", cwd=cwd, env=env).stdout
        assert "Non0_acc_2" in out and "derl vs prlf" in out
        out = sh(bin_ / "msabench", "verify", "--claim", "derl > prlf on synth-intra: Non0 Acc-2 +2.47%", "--results",
                 results, "--resamples", "300", cwd=cwd, env=env).stdout
        assert "derl > prlf" in out
        sh(bin_ / "msabench", "leaderboard", "--results", results, "--out", tmp_path / "board", "--html",
           "--resamples", "300", cwd=cwd, env=env)
        board = (tmp_path / "board" / "README.md").read_text()
        assert "No figures: matplotlib is not installed" in board and "LNLN" in board and "DERL" in board
        assert "could not be checked against today's models" in board  # the identity check needs the models
        assert (tmp_path / "board" / "index.html").is_file() and not list((tmp_path / "board").glob("*.png"))
        run = subprocess.run([bin_ / "msabench", "run", "--protocol", "synth-intra", "--model", "lnln", "--out",
                              tmp_path / "res"], capture_output=True, text=True, cwd=cwd, env=env)
        assert run.returncode != 0 and "pip install 'msabench[run]'" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    finally:
        (installed["site"] / "zz_core_only.pth").unlink()
