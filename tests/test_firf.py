"""The FIRF baseline: it learns, every paper component is switchable, robust to missing modalities, exact."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, runner, submission, training
from msabench.baselines import firf

from conftest import inter_protocol, intra_protocol, small_dataset

SWITCHES = ("factorization", "noise_part", "self_distillation", "bidirectional")
FAST = "epochs=2,hidden=32"


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


def intra(rates=(0.0, 0.5, 0.9)):
    return intra_protocol(rates, 1)


def views(split, n=16, seed=5):
    """A clean and a corrupted (LNLN augmentation) view of the first n training rows, as tensors."""
    rows = np.arange(n)
    clean, _ = masking.corrupt(split, training.complete(split), rows, reveal=False)
    obs = training.augmentation(split, seed, complete_fraction=0.25)
    corrupted, _ = masking.corrupt(split, obs, rows, reveal=False)
    return training.tensors(clean), training.tensors(corrupted), torch.from_numpy(split.labels[rows].astype(np.float32))


def loss_parts(info, opts, clean, corrupted, y, seed=0):
    torch.manual_seed(seed)
    net = firf.Net(info, opts)
    net.train()
    torch.manual_seed(seed + 1)
    loss, parts = net.training_loss(clean, corrupted, y)
    return net, float(loss.detach()), {k: float(v) for k, v in parts.items()}


def test_training_loss_falls(data):
    model = firf.build(data.info, firf.FIRFOptions(epochs=4, hidden=32, lr=3e-3))
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], 3)
    first, last = model.history[0], model.history[-1]
    assert len(model.history) == 4
    assert last["train_loss"] < 0.9 * first["train_loss"]
    for key in ("l1", "l1_complete", "calib", "calib_back", "sim", "orth", "recon"):
        assert np.isfinite(last[key]), key
    assert last["recon"] < first["recon"]  # the factor parts learn to rebuild the representation


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_the_model(data, switch):
    sub = submission.load(f"firf:{switch}=off")
    assert sub.name == f"firf[{switch}=False]"
    model = sub.build(data.info)
    assert getattr(model.options, switch) is False
    assert all(getattr(model.options, s) for s in SWITCHES if s != switch)

    info, split = data.info, data["train"]
    clean, corrupted, y = views(split)
    on = firf.FIRFOptions(hidden=32)
    off = dataclasses.replace(on, **{switch: False})
    net_on, loss_on, parts_on = loss_parts(info, on, clean, corrupted, y)
    net_off, loss_off, parts_off = loss_parts(info, off, clean, corrupted, y)
    names_on = {n for n, _ in net_on.named_parameters()}
    names_off = {n for n, _ in net_off.named_parameters()}
    assert loss_on != loss_off
    if switch == "factorization":
        assert any(n.startswith("synergy") for n in names_on) and not any(n.startswith("synergy") for n in names_off)
        assert {"sim", "orth", "recon"} <= set(parts_on) and not {"sim", "orth", "recon"} & set(parts_off)
        assert net_off.head[0].in_features == 3 * 32 and net_on.head[0].in_features == 6 * 32
    elif switch == "noise_part":
        assert any(n.startswith("noise") for n in names_on) and not any(n.startswith("noise") for n in names_off)
        assert net_on.decoder["T"].in_features == 3 * 32 and net_off.decoder["T"].in_features == 2 * 32
        assert parts_on["orth"] != parts_off["orth"]
    elif switch == "self_distillation":
        assert names_on == names_off
        assert {"l1_complete", "calib", "calib_back"} <= set(parts_on)
        assert not {"l1_complete", "calib", "calib_back"} & set(parts_off)
    else:
        assert names_on == names_off
        assert parts_on["calib_back"] > 0 and "calib_back" not in parts_off
        assert parts_off["calib"] == pytest.approx(parts_on["calib"], rel=1e-6)


def test_calibration_is_one_way_per_term_and_zero_for_complete_rows(data):
    student = torch.randn(5, 8, requires_grad=True)
    teacher = torch.randn(5, 8, requires_grad=True)
    firf.calibration(student, teacher).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0  # stop-gradient on the teacher side

    clean, _, y = views(data["train"])
    _, _, parts = loss_parts(data.info, firf.FIRFOptions(hidden=32), clean, clean, y)
    assert parts["calib"] == 0.0 and parts["calib_back"] == 0.0  # same input in both views
    assert parts["l1"] == parts["l1_complete"]


def test_missing_modalities_cache_and_batch_size_exact(data):
    sub = submission.load(f"firf:{FAST}")
    inter = inter_protocol(1)
    unit = runner.run_unit(sub, data, inter, 1)  # trains and caches the checkpoint
    assert set(unit.conditions) == {"T", "A", "V", "TA", "TV", "AV", "TAV"}
    assert np.isfinite(unit.predictions).all()
    assert np.std(unit.predictions) > 0

    # all-[UNK] text, all-zero audio and vision at once: still finite
    model = sub.build(data.info)
    model.fit(data["train"], data["valid"], 1)
    batch, mask = masking.corrupt(data["test"], training.complete(data["test"]), slice(0, 10), reveal=False)
    empty = dataclasses.replace(batch, text_ids=np.where(batch.text_mask > 0, masking.UNK_ID, 0),
                                audio=np.zeros_like(batch.audio), vision=np.zeros_like(batch.vision))
    assert np.isfinite(model.predict(empty, mask)).all()

    # a fresh model fitted again with the same seed loads the checkpoint: bit-identical predictions
    logs = []
    again = firf.FIRF(data.info, sub.build(data.info).options, log=logs.append)
    again.fit(data["train"], data["valid"], 1)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(again.predict(batch, mask), model.predict(batch, mask))
    assert np.array_equal(again.predict(empty, mask), model.predict(empty, mask))

    # the same predictions whatever the batch size
    p = intra()
    preds = [runner.run_unit(sub, data, p, 1, batch_size=bs).predictions for bs in (1, 7, len(data["test"]))]
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
    assert not np.array_equal(preds[0][:60], preds[0][-60:])  # r = 0 and r = 0.9 differ
