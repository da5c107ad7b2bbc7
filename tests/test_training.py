import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from msabench import masking, protocols, runner, submission, training
from msabench.baselines import late_fusion
from msabench.errors import MsabenchError

from conftest import ROOT, small_dataset

FAST = "hidden=16,epochs=3,patience=3"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MSABENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


def test_shared_augmentation_leaves_half_the_samples_complete_in_every_modality_at_once():
    split = small_dataset(sizes=(10, 10, 2000))["test"]
    obs = training.augmentation(split, 5, complete_fraction=0.5)
    pads = masking.valid(split)
    frac_kept = obs.audio.sum(1) / pads["A"].sum(1)
    complete = np.all([(o == p).all(1) for o, p in zip(obs.by_modality().values(), pads.values())], axis=0)
    assert abs(complete.mean() - 0.5) < 0.05  # half the samples untouched (plus rare r ~ 0 draws)
    dropped = 1 - frac_kept[~complete]
    assert abs(dropped.mean() - 0.5) < 0.05 and dropped.min() < 0.1 and dropped.max() > 0.9  # r ~ U[0, 1)
    assert np.all(obs.text[:, 0]) and np.all(obs.text[np.arange(len(split)), split.text_lengths - 1])
    again = training.augmentation(split, 5, complete_fraction=0.5)
    assert np.array_equal(again.vision, obs.vision)
    assert not np.array_equal(training.augmentation(split, 6, 0.5).vision, obs.vision)


def test_schedule_warms_up_then_decays():
    f = training._schedule(100, 0.1)
    values = [f(s) for s in range(100)]
    assert values[0] < values[5] < values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:])) and values[-1] < 0.01


def test_options_are_parsed_named_and_hashed():
    a = submission.load("text-only:hidden=16,augment=off")
    b = submission.load("text-only")
    assert a.name == "text-only[augment=False,hidden=16]" and b.name == "text-only"
    assert a.sha256 != b.sha256
    with pytest.raises(MsabenchError, match="has no option 'size'; options: hidden=64"):
        submission.load("text-only:size=3")
    with pytest.raises(MsabenchError, match="hidden='big' is not a int"):
        submission.load("text-only:hidden=big")
    with pytest.raises(MsabenchError, match="augment='maybe' is not a bool"):
        submission.load("text-only:augment=maybe")
    with pytest.raises(MsabenchError, match="model mean takes no options"):
        submission.load("mean:x=1")
    with pytest.raises(MsabenchError, match="key=value"):
        submission.load("text-only:hidden")
    with pytest.raises(MsabenchError, match="bundled models: .*late-fusion.*text-only"):
        submission.load("nosuch")


def test_late_fusion_learns_caches_and_reloads_identically(data, cache):
    sub = submission.load(f"late-fusion:{FAST}")
    model = sub.build(data.info)
    model.fit(data["train"], data["valid"], 4)
    losses = [h["train_loss"] for h in model.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    files = list(cache.rglob("*.pt"))
    assert len(files) == 1
    p = protocols.load("synth-inter")
    first = runner.run_unit(sub, data, p, 4).predictions
    assert np.isfinite(first).all()  # every availability set, including text missing
    # a second unit loads the checkpoint: no training history, bit-identical predictions
    again = runner.run_unit(sub, data, p, 4).predictions
    assert np.array_equal(first, again)
    # a damaged checkpoint is retrained, deterministically, to the same weights
    files[0].write_bytes(b"not a checkpoint")
    retrained = runner.run_unit(sub, data, p, 4).predictions
    assert np.array_equal(first, retrained)


def test_checkpoint_made_for_other_data_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    training.save_checkpoint(path, {"w": torch.zeros(2)}, {"info": {"audio_dim": 5}, "fingerprint": "a"})
    assert torch.equal(training.load_checkpoint(path, {"fingerprint": "a"})["w"], torch.zeros(2))
    with pytest.raises(MsabenchError, match="made with info=.*audio_dim.*5"):
        training.load_checkpoint(path, {"info": {"audio_dim": 74}})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MsabenchError, match="unreadable"):
        training.load_checkpoint(path, {})


def test_text_only_ignores_audio_and_vision(data):
    sub = submission.load(f"text-only:{FAST}")
    p = protocols.load("synth-inter")
    preds = runner.run_unit(sub, data, p, 1).predictions.reshape(len(p.conditions), -1)
    names = [c.name for c in p.conditions]
    assert np.array_equal(preds[names.index("T")], preds[names.index("TAV")])
    assert not np.array_equal(preds[names.index("A")], preds[names.index("TAV")])


def test_train_command(tmp_path):
    env = {"MSABENCH_CACHE": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "msabench", "train", "--model", f"text-only:{FAST}", "--seeds", "1"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "text-only[epochs=3,hidden=16,patience=3] seed 1: ready" in proc.stdout
    assert "epoch   1/3" in proc.stderr and "valid MAE" in proc.stderr
    assert len(list((tmp_path / "c").rglob("*.pt"))) == 1
    bad = subprocess.run([sys.executable, "-m", "msabench", "train", "--model", "mean", "--dataset", "iemocap"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert bad.returncode == 2 and "unknown dataset 'iemocap'" in bad.stderr


def test_input_noise_only_touches_observed_features_and_keeps_views_aligned():
    clean = {"audio": torch.ones(4, 1, 3), "text_features": torch.ones(4, 1, 2), "text_mask": torch.ones(4, 1)}
    corrupted = {k: v.clone() for k, v in clean.items()}
    corrupted["audio"][1] = 0.0  # a dropped utterance vector
    training.add_input_noise(clean, corrupted, 0.5, torch.Generator().manual_seed(0))
    assert torch.all(corrupted["audio"][1] == 0)  # missing stays missing
    assert not torch.equal(clean["audio"][1], torch.ones(1, 3))
    for key in ("audio", "text_features"):
        assert torch.equal(clean[key][[0, 2, 3]], corrupted[key][[0, 2, 3]])  # same draw in both views
    assert torch.equal(clean["text_mask"], torch.ones(4, 1))
    assert training.Recipe().input_noise == 0.0  # off by default: other data train as before


def test_the_authors_schedules():
    """recipe=authors: LNLN's and ALMT's warm-up then cosine, once per epoch; CENet's warm-up then linear decay."""
    lnln_like = training.Recipe(epochs=200, warmup=0.1, schedule="epoch-cosine")
    f = training.lr_factor(lnln_like, steps_per_epoch=3)
    per_epoch = [f(3 * e) for e in range(200)]
    assert [f(3 * e + 2) for e in range(200)] == per_epoch  # constant within an epoch
    assert per_epoch[0] == 0.0 and per_epoch[10] == pytest.approx(0.5) and per_epoch[20] == per_epoch[21] == 1.0
    # after the warm-up: torch's CosineAnnealingLR over 0.9 * epochs, stepped once per epoch
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=180)
    for e in range(21, 200):
        assert per_epoch[e] == pytest.approx(opt.param_groups[0]["lr"], abs=1e-9), e
        opt.step()
        cosine.step()
    cenet_like = training.Recipe(epochs=10, warmup=0.4, schedule="linear")
    g = training.lr_factor(cenet_like, steps_per_epoch=10)  # 100 steps, 40 of warm-up
    assert [g(s) for s in (0, 20, 40, 70, 100)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    with pytest.raises(MsabenchError, match="schedule 'steps'"):
        training.lr_factor(training.Recipe(schedule="steps"), 3)


def test_recipe_authors_is_the_authors_and_only_where_known(data):
    for name in ("lnln", "almt", "cenet"):
        sub = submission.load(f"{name}:recipe=authors")
        assert sub.name == f"{name}[recipe=authors]" and sub.sha256 != submission.load(name).sha256
        model = sub.build(data.info)
        recipe = model.recipe()
        assert recipe.patience == 0 and recipe.loss == "mse" and recipe.grad_clip in (0.0, 2.0)
        assert recipe.epochs == {"lnln": 200, "almt": 200, "cenet": 40}[name]
        assert recipe.lr == recipe.bert_lr == {"lnln": 1e-4, "almt": 1e-4, "cenet": 6e-5}[name]
        assert recipe.augment is (name == "lnln") and recipe.complete_per_modality is (name == "lnln")
        assert recipe == type(model.options).AUTHORS_RECIPE
    shared = submission.load("lnln").build(data.info).recipe()
    assert shared.patience == 6 and shared.complete_per_modality  # lnln: per modality always
    for name in ("lnln", "almt"):  # their task loss is the authors' MSE under both recipes, and recorded as such
        assert submission.load(name).build(data.info).recipe().loss == "mse"
    assert submission.load("prlf").build(data.info).recipe().loss == "l1"
    with pytest.raises(MsabenchError, match="recipe=authors: no authors' recipe is known for it"):
        submission.load("text-only:recipe=authors")
    with pytest.raises(MsabenchError, match="option recipe must be 'msabench' or 'authors'"):
        submission.load("lnln:recipe=paper")


def test_no_early_stop_when_patience_is_zero(data):
    recipe = training.Recipe(epochs=4, patience=1, lr=1e-12, warmup=0.0)
    runs = []
    for patience in (1, 0):
        training.seed_all(2)
        net = late_fusion.build(data.info, late_fusion.OPTIONS(hidden=16)).make_net()
        runs.append(training.fit(net, data["train"], data["valid"], 2, dataclasses.replace(recipe, patience=patience)))
    assert len(runs[0]) < 4 == len(runs[1])


def test_accumulated_steps_drop_the_remainder_and_adam_and_constant_are_known(data):
    """`Recipe.accumulate` (MMSA's update_epochs): the gradients of that many batches make one step, and the
    batches left at an epoch's end make none."""
    per_batch = -(-len(data["train"]) // 3)  # three batches an epoch

    def moved(accumulate):
        training.seed_all(2)
        net = late_fusion.build(data.info, late_fusion.OPTIONS(hidden=16)).make_net()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        recipe = training.Recipe(epochs=1, batch_size=per_batch, accumulate=accumulate, optimizer="adam",
                                 schedule="constant", warmup=0.0, grad_clip=0.0, augment=False)
        training.fit(net, data["train"], data["valid"], 2, recipe)
        return any(not torch.equal(before[k], v) for k, v in net.state_dict().items())

    assert not moved(4) and moved(3) and moved(1)
    assert training.lr_factor(training.Recipe(schedule="constant"), 5)(123) == 1.0
    with pytest.raises(MsabenchError, match="recipe optimizer 'sgd'"):
        training.fit(late_fusion.build(data.info).make_net(), data["train"], data["valid"], 2,
                     training.Recipe(optimizer="sgd"))


def test_a_recipe_gives_the_groups_a_model_names_their_own_rates(data):
    net = late_fusion.build(data.info, late_fusion.OPTIONS(hidden=16)).make_net()
    assert len(training.param_groups(net, training.Recipe())) == 1  # the shared recipe: as before
    net.parameter_group = lambda name: "head" if name.startswith("head.") else None
    assert len(training.param_groups(net, training.Recipe())) == 1  # no group listed: names are not read
    groups = training.param_groups(net, training.Recipe(lr=1e-3, groups=(("head", 0.5, 0.25), ("absent", 1.0, 0.0))))
    head = {id(p) for p in net.head.parameters()}
    assert len(groups) == 2 and groups[0]["lr"] == 1e-3 and "weight_decay" not in groups[0]
    assert {id(p) for p in groups[1]["params"]} == head and (groups[1]["lr"], groups[1]["weight_decay"]) == (0.5, 0.25)
    assert not head & {id(p) for p in groups[0]["params"]}


def test_the_recipe_loss_reaches_a_model_that_takes_it(data):
    model = submission.load("cenet:recipe=authors,epochs=1").build(data.info)
    assert model.recipe().loss == "mse"
    net = model.make_net().eval()  # no dropout: the same pass twice
    net.task_loss = model.recipe().loss
    batch, _ = masking.corrupt(data["train"], training.complete(data["train"]), np.arange(8), reveal=False)
    x, y = training.tensors(batch), torch.from_numpy(data["train"].labels[:8].astype(np.float32))
    parts = net.loss_parts(x, x, y)
    assert "mse" in parts and "l1" not in parts
    assert torch.allclose(parts["mse"], torch.nn.functional.mse_loss(net(x).pred, y))
