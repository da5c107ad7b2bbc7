"""Where bundled models compute: device/precision/threads options, checkpoints across placements,
the CPU determinism contract, and the bad inputs that must fail before any work.

CI has no GPU: the CUDA branches of `devices.resolve` run with `gpus=` given, and everything
but the placement itself (autocast, the non-exact predict path, moving batches) runs on the
CPU with precision=bf16.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from msabench import cli, devices, masking, protocols, runner, submission, training
from msabench.errors import MsabenchError

from conftest import small_dataset, write_file

TINY = "epochs=1,hidden=16"


def fresh_cache(tmp_path, name):
    os.environ["MSABENCH_CACHE"] = str(tmp_path / name)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path):
    old = os.environ.get("MSABENCH_CACHE")
    fresh_cache(tmp_path, "cache")
    yield
    os.environ["MSABENCH_CACHE"] = old


def fitted(spec, data, seed=1):
    model = submission.load(spec).build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], seed)
    return model


def predict_all(model, split, batch_size):
    out = []
    obs = masking.observed(protocols.load("synth-intra"), split, 1111)["r=0.3"]
    for start in range(0, len(split), batch_size):
        batch, mask = masking.corrupt(split, obs, slice(start, start + batch_size), reveal=False)
        out.append(model.predict(batch, mask))
    return np.concatenate(out)


# ---- resolution and up-front checks -------------------------------------------------------------

def test_auto_resolves_to_the_cpu_and_the_jobs_threads_here():
    assert devices.visible_gpus() == 0  # CI and this machine: if this fails, the GPU tests below are moot
    c = devices.resolve()
    assert (c.device, c.precision, c.threads) == ("cpu", "fp32", torch.get_num_threads())
    assert c.exact
    with devices.threads(1):
        assert devices.resolve().threads == 1
    assert devices.resolve(threads=3).threads == 3


def test_cuda_branches_of_resolution():
    assert devices.choose("auto", "auto", 0, gpus=1, bf16_ok=True).device == "cuda:0"
    on_gpu = devices.choose("auto", "auto", 0, gpus=2, bf16_ok=True)
    assert (on_gpu.kind, on_gpu.precision, on_gpu.exact) == ("cuda", "bf16", False)
    assert devices.choose("cuda:1", "auto", 0, gpus=2, bf16_ok=False).precision == "fp32"  # pre-Ampere GPUs
    assert devices.choose("cuda", "fp32", 4, gpus=1, bf16_ok=True).threads == 4
    cpu = devices.choose("cpu", "auto", 0, gpus=2, bf16_ok=True)
    assert (cpu.device, cpu.precision) == ("cpu", "fp32")
    with pytest.raises(MsabenchError, match="does not support bfloat16"):
        devices.choose("cuda", "bf16", 0, gpus=1, bf16_ok=False)


@pytest.mark.parametrize("device,precision,threads,gpus,message", [
    ("cuda", "auto", 0, 0, "device=cuda but the job sees no GPU"),
    ("cuda:3", "auto", 0, 1, r"device=cuda:3 but the job sees 1 GPU\(s\): cuda:0 to cuda:0"),
    ("gpu", "auto", 0, None, "option device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("cpu:1", "auto", 0, None, "option device must be"),
    ("cpu", "fp16", 0, None, "option precision must be auto, fp32 or bf16 .*use bf16"),
    ("cpu", "auto", -1, None, "option threads must be >= 0"),
])
def test_impossible_placements_are_one_line(device, precision, threads, gpus, message):
    with pytest.raises(MsabenchError, match=message) as e:
        devices.check(device, precision, threads, gpus)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec,message", [
    ("prlf:device=cuda", "device=cuda but the job sees no GPU"),
    ("prlf:device=cuda:3", "device=cuda:3 but the job sees no GPU"),
    ("derl:precision=fp16", "option precision must be auto, fp32 or bf16"),
    ("firf:hidden=-3", r"option hidden must be a multiple of 4 \(attention heads\), >= 4, got -3"),
    ("prlf:dropout=2", r"option dropout must be in \[0, 1\), got 2.0"),
    ("text-only:text_input=features", "text_input=features, but synth-mosi aligned_50 has no token features"),
])
def test_cli_refuses_before_any_work(tmp_path, capsys, spec, message):
    out = tmp_path / "results"
    code = cli.main(["run", "--protocol", "synth-inter", "--model", spec, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and __import__("re").search(message, err), err
    assert not out.exists()
    assert not Path(os.environ["MSABENCH_CACHE"]).exists()  # nothing trained


def test_cpus_per_job_sets_the_threads_of_a_serial_job(tmp_path):
    """A submission that reports torch's thread count as its prediction: what the job was given."""
    sub = write_file(tmp_path / "threads.py", """
        import numpy as np, torch
        def predict(batch, mask):
            return np.full(len(batch), float(torch.get_num_threads()))
        class M:
            def predict(self, batch, mask):
                return predict(batch, mask)
    """)
    data = small_dataset(sizes=(20, 10, 12))
    from msabench import executors

    for cpus, want in ((1, 1.0), (None, float(devices.available_cpus()))):
        rep = executors.run("synth-inter", sub, out=tmp_path / f"out{cpus}", dataset=data, seeds=[1111],
                            executor=executors.SerialExecutor(cpus))
        assert set(rep.units[0].predictions.tolist()) == {want}
    with pytest.raises(MsabenchError, match="may use only"):
        executors.SerialExecutor(devices.available_cpus() + 1)


# ---- checkpoints ------------------------------------------------------------------------------------

def test_checkpoint_fingerprint_covers_device_precision_and_threads():
    data = small_dataset(sizes=(20, 10, 10))
    model = submission.load(f"text-only:{TINY}").build(data.info)
    paths = set()
    for compute in (devices.Compute("cpu", "fp32", 1), devices.Compute("cpu", "fp32", 2),
                    devices.Compute("cpu", "bf16", 1), devices.Compute("cuda:0", "bf16", 1, "NVIDIA H100"),
                    devices.Compute("cuda:0", "fp32", 1, "NVIDIA H100"),
                    devices.Compute("cuda:0", "bf16", 1, "NVIDIA A100")):
        model._compute = compute
        paths.add(model.checkpoint_path(data["train"], data["valid"], 1)[0])
    assert len(paths) == 6
    # a GPU job's thread count does not change its weights' identity; "auto" and "cpu" are the same placement
    model._compute = devices.Compute("cuda:0", "bf16", 8, "NVIDIA H100")
    assert model.checkpoint_path(data["train"], data["valid"], 1)[0] in paths
    a = submission.load(f"text-only:{TINY},device=cpu").build(data.info)
    b = submission.load(f"text-only:{TINY},device=auto,threads={torch.get_num_threads()}").build(data.info)
    assert a.checkpoint_path(data["train"], data["valid"], 1)[0] == b.checkpoint_path(data["train"], data["valid"], 1)[0]


def test_a_checkpoint_trained_in_one_placement_loads_in_another(tmp_path):
    data = small_dataset(sizes=(60, 20, 30))
    trained = fitted(f"late-fusion:{TINY},precision=bf16,threads=1", data, seed=3)
    assert not trained.compute.exact  # the non-exact (GPU-style) predict path, on the CPU
    path = trained.checkpoint_path(data["train"], data["valid"], 3)[0]
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" and v.dtype in (torch.float32, torch.int64, torch.bool)
               for v in blob["state_dict"].values())
    assert blob["meta"]["compute"] == {"kind": "cpu", "precision": "bf16", "threads": 1}
    bf16_preds = predict_all(trained, data["test"], 64)
    assert np.isfinite(bf16_preds).all() and np.unique(bf16_preds).size > 5

    fresh_cache(tmp_path, "elsewhere")  # another machine: an empty cache
    loaded = fitted(f"late-fusion:{TINY},precision=fp32,threads=2,checkpoint={path}", data, seed=3)
    assert loaded.compute.exact
    for k, v in trained.net.state_dict().items():
        assert torch.equal(v.cpu(), loaded.net.state_dict()[k])
    exact = predict_all(loaded, data["test"], 64)
    assert np.abs(exact - bf16_preds).max() < 0.1  # same weights, float64 vs bf16 arithmetic
    assert not Path(os.environ["MSABENCH_CACHE"]).exists()  # loaded, not retrained

    with pytest.raises(MsabenchError, match="was made with seed=3, but this run has seed=4"):
        fitted(f"late-fusion:{TINY},checkpoint={path}", data, seed=4)
    with pytest.raises(MsabenchError, match="was made with options="):
        fitted(f"late-fusion:epochs=2,hidden=16,checkpoint={path}", data, seed=3)


# ---- the CPU determinism contract ------------------------------------------------------------------

def test_cpu_training_repeats_bit_for_bit_at_a_given_thread_count(tmp_path):
    data = small_dataset(sizes=(80, 20, 30))
    states = []
    for i in range(2):
        fresh_cache(tmp_path, f"c{i}")
        states.append(fitted(f"prlf:{TINY},threads=2", data).net.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    fresh_cache(tmp_path, "one")
    single = fitted(f"prlf:{TINY},threads=1", data)
    assert single.compute.threads == 1
    # another thread count is another placement: own fingerprint, own checkpoint
    assert single.checkpoint_path(data["train"], data["valid"], 1)[1]["compute"]["threads"] == 1


def test_cpu_predictions_do_not_depend_on_batch_size_or_threads():
    data = small_dataset(sizes=(80, 20, 45))
    model = fitted(f"derl:{TINY},threads=2", data)
    test = data["test"]
    runs = [predict_all(model, test, bs) for bs in (1, 7, len(test))]
    model._compute = dataclasses.replace(model.compute, threads=1)
    runs.append(predict_all(model, test, 16))
    for other in runs[1:]:
        assert np.array_equal(runs[0], other)


def test_bf16_training_on_cpu_covers_the_device_path():
    data = small_dataset(sizes=(60, 20, 30))
    model = fitted(f"firf:{TINY},precision=bf16", data)
    assert model.history and np.isfinite([r["train_loss"] for r in model.history]).all()
    preds, whole = predict_all(model, data["test"], 7), predict_all(model, data["test"], 30)
    assert np.isfinite(preds).all() and np.abs(preds - whole).max() < 0.05  # bf16: no bit-exactness promised
    # the output layer runs in float32: scores are not rounded to bf16's 8-bit mantissa
    low_bits = preds.astype(np.float32).view(np.uint32) & 0xFFFF
    assert np.mean(low_bits != 0) > 0.9


def test_manifest_records_the_placement():
    data = small_dataset(sizes=(40, 10, 12))
    unit = runner.run_unit(submission.load(f"text-only:{TINY}"), data, protocols.load("synth-inter"), 1111,
                           threads=1)
    c = unit.manifest["compute"]
    assert (c["device"], c["precision"], c["threads"]) == ("cpu", "fp32", 1)
    assert "cuda" in c and c["name"]
    # which CPU made the bits: its model and the instruction set torch's kernels dispatch to
    capability = torch.backends.cpu.get_cpu_capability()
    assert c["name"].endswith(f"torch CPU capability {capability})")
    mean = runner.run_unit(submission.load("mean"), data, protocols.load("synth-inter"), 1111, threads=1)
    assert mean.manifest["compute"]["threads"] == 1 and mean.manifest["compute"]["gpus"] == []
    assert mean.manifest["compute"]["cpu"] == c["name"]


# ---- text inputs ------------------------------------------------------------------------------------

def test_text_input_auto_prefers_precomputed_features():
    data = small_dataset(sizes=(40, 10, 12), text_feature_dim=24)
    assert data.info.has_text_ids and data.info.text_feature_dim == 24
    from msabench import torch_baseline as tb

    opts = tb.Options()
    assert tb.text_input(data.info, opts) == "features"
    assert tb.text_input(data.info, dataclasses.replace(opts, text_input="ids")) == "ids"
    assert tb.text_input(data.info, dataclasses.replace(opts, text_encoder="bert")) == "ids"
    with pytest.raises(MsabenchError, match="text_encoder=bert reads token ids"):
        tb.text_input(data.info, dataclasses.replace(opts, text_encoder="bert", text_input="features"))
    net = submission.load(f"text-only:{TINY}").build(data.info).make_net()
    assert not net.text.use_ids and net.text.proj.in_features == 24
    assert not hasattr(net.text, "embed")


def test_bert_parameters_get_their_own_learning_rate():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.text = torch.nn.Module()
            self.text.bert = torch.nn.Linear(3, 3)
            self.text.proj = torch.nn.Linear(3, 2)
            self.head = torch.nn.Linear(2, 1)

    net = Net()
    groups = training.param_groups(net, training.Recipe(lr=1e-3, bert_lr=5e-5))
    assert [g["lr"] for g in groups] == [1e-3, 5e-5]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.text.bert.parameters()}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(net.parameters()))
    assert len(training.param_groups(net.head, training.Recipe())) == 1  # no BERT: one group
