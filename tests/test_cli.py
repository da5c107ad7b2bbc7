"""The command line as users type it: real subprocesses, real files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from msabench import masking, metrics, protocols
from msabench.data import synth

from conftest import ROOT, small_raw, write_file, write_pickle


def msabench(*args, cwd=None, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=full_env, timeout=600)


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msabench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_run_mean_on_synth_inter(tmp_path):
    proc = msabench("run", "--protocol", "synth-inter", "--model", "mean", "--seeds", "1111", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mean on synth-inter" in proc.stdout and "| TAV" in proc.stdout and "| mean" in proc.stdout
    manifest = json.loads((tmp_path / "synth-inter" / "mean" / "seed-1111" / "manifest.json").read_text())
    assert manifest["protocol_fingerprint"] == protocols.load("synth-inter").fingerprint
    again = msabench("run", "--protocol", "synth-inter", "--model", "mean", "--seeds", "1111", "--out", tmp_path)
    assert "re-used 1 finished result(s)" in again.stderr
    assert again.stdout == proc.stdout


def test_score_csv(tmp_path):
    rng = np.random.default_rng(0)
    p, y = rng.normal(size=50), np.round(rng.uniform(-3, 3, 50) * 3) / 3
    csv = tmp_path / "s.csv"
    csv.write_text("prediction,label\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(p, y)))
    proc = msabench("score", csv)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = metrics.compute(p, y, "mosi")
    assert list(got) == list(want) and all(got[k] == pytest.approx(want[k], rel=1e-12) for k in want)
    one_line_error(msabench("score", tmp_path / "none.csv"), "none.csv")


def test_masks_export(tmp_path):
    out = tmp_path / "m" / "masks.npz"
    proc = msabench("masks", "export", "--protocol", "synth-intra", "--out", out)
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip().splitlines()[-1].split()[-1]
    with np.load(out) as z:
        keys = set(z.files)
        assert "ids" in keys and "T/r=0.3/1112" in keys and len(keys) == 1 + 3 * 10 * 3
        t = z["T/r=0.3/1112"]
        assert t.dtype == bool and t.shape == (686, 50)
    p = protocols.load("synth-intra")
    test = synth.make_dataset()["test"]
    assert digest == masking.export(p, test)[1]
    assert not [f for f in out.parent.iterdir() if f.name != "masks.npz"]


def test_masks_export_real_layout_with_data_dir(tmp_path):
    write_pickle(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl",
                 small_raw(aligned=False, audio_len=30, vision_len=40))
    out = tmp_path / "masks.npz"
    proc = msabench("masks", "export", "--protocol", "mosi-intra", "--data-dir", tmp_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as z:
        assert z["A/r=0.5/1111"].shape == (40, 30)


def test_data_convert_and_run_from_folder(tmp_path):
    pkl = write_pickle(tmp_path / "MOSI" / "Processed" / "aligned_50.pkl", small_raw())
    out_dir = tmp_path / "hf"
    proc = msabench("data", "convert", pkl, out_dir)
    assert proc.returncode == 0, proc.stderr
    assert "wrote mosi aligned_50" in proc.stdout
    proto = write_file(tmp_path / "p.toml", """
        name = "mini"
        version = 1
        dataset = "mosi"
        variant = "aligned_50"
        seeds = [1]
        primary_metric = "MAE"
        [missing]
        kind = "inter"
        """)
    res = tmp_path / "res"
    a = msabench("run", "--protocol", proto, "--model", "mean", "--data", out_dir, "--out", res)
    b = msabench("run", "--protocol", proto, "--model", "mean", "--data", pkl, "--out", tmp_path / "res2")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ma = json.loads((res / "mini" / "mean" / "seed-1" / "manifest.json").read_text())
    mb = json.loads((tmp_path / "res2" / "mini" / "mean" / "seed-1" / "manifest.json").read_text())
    assert ma["dataset_fingerprint"] == mb["dataset_fingerprint"]


@pytest.mark.parametrize("args,needles", [
    (["run", "--protocol", "nope", "--model", "mean"], ["unknown protocol 'nope'"]),
    (["run", "--protocol", "mosi-intra", "--model", "mean"], ["no data for mosi", "MOSI/Processed/unaligned_50.pkl"]),
    (["run", "--protocol", "mosi-intra", "--model", "mean", "--data", "/nonexistent/x.pkl"],
     ["/nonexistent/x.pkl does not exist"]),
    (["run", "--protocol", "synth-intra", "--model", "missing.py"], ["submission missing.py is neither a file nor a bundled model"]),
    (["run", "--protocol", "synth-intra", "--model", "mean", "--seeds", "3"], ["seed 3 is not one of the seeds of synth-intra"]),
])
def test_bad_input_is_one_line(tmp_path, args, needles):
    proc = msabench(*args, "--out", tmp_path / "out", env={"MSABENCH_DATA": ""})
    one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()


def test_evil_pickle_via_cli(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    proc = msabench("run", "--protocol", "mosi-inter", "--model", "mean", "--data", evil, "--out", tmp_path / "o")
    one_line_error(proc, "refusing to load", "os.system")
    assert not (tmp_path / "pwned").exists()


def test_bad_protocol_file_via_cli(tmp_path):
    proto = write_file(tmp_path / "p.toml", 'name = "x"\nversion = 1\ndataset = "synth-mosi"\nseeds = []\n'
                                            'primary_metric = "MAE"\n[missing]\nkind = "inter"\n')
    one_line_error(msabench("run", "--protocol", proto, "--model", "mean"), str(proto), "'seeds'")


def test_nonfinite_values_reported_once(tmp_path):
    raw = small_raw()
    raw["train"]["audio"][0, 0, :] = -np.inf
    write_pickle(tmp_path / "MOSI" / "Processed" / "aligned_50.pkl", raw)
    proto = write_file(tmp_path / "p.toml", """
        name = "mini"
        version = 1
        dataset = "mosi"
        seeds = [1]
        primary_metric = "MAE"
        [missing]
        kind = "inter"
        sets = ["T", "TAV"]
        """)
    proc = msabench("run", "--protocol", proto, "--model", "mean", "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "non-finite" in line]
    assert len(notes) == 1 and "5 non-finite" in notes[0]


def test_version_is_the_package_version():
    from msabench.version import __version__

    proc = subprocess.run([sys.executable, "-m", "msabench", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == f"msabench {__version__}"
