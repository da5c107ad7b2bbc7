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

    def ignore(folder, names):  # of leaderboard/, only the published-results registry is packaged
        skip = common(folder, names)
        return skip | ({n for n in names if n != "published"} if Path(folder).name == "leaderboard" else set())

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
