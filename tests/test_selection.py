"""selection=test-per-metric: LNLN's checkpoint choice on the test split, reproduced exactly and kept apart."""

import json

import numpy as np
import pytest
import torch

from msabench import board, cli, compare, leaderboard, masking, metrics, protocols, results, runner, submission, training
from msabench.baselines import late_fusion
from msabench.errors import MsabenchError

from conftest import small_dataset

FAST = "hidden=16,epochs=4,patience=4"
TEST_SELECTED = f"late-fusion:{FAST},selection=test-per-metric,selection_metric="


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


def lnln_like():
    """r = 0 and LNLN's own selection condition (r = 0.5, masks of seed 1111 drawn as MMSA does)."""
    return protocols.parse({"name": "t-intra", "version": 1, "dataset": "synth-mosi", "seeds": [1, 2],
                            "mask_seeds": [1111], "mask_convention": "mmsa", "primary_metric": "Non0_acc_2",
                            "missing": {"kind": "intra", "rates": [0.0, 0.5]}}, "test")


def test_watching_the_test_split_changes_nothing_in_training(data):
    """The valid-selected weights and the history are those of the same run unwatched: only the kept epoch differs."""
    recipe = training.Recipe(epochs=4, patience=4)
    nets, histories = [], []
    for watch in (None, training.TestSelection(data["test"], "mosi")):
        training.seed_all(3)
        net = late_fusion.build(data.info, late_fusion.OPTIONS(hidden=16)).make_net()
        histories.append(training.fit(net, data["train"], data["valid"], 3, recipe, test_selection=watch))
        nets.append(net)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)
    assert [h["valid_mae"] for h in histories[0]] == [h["valid_mae"] for h in histories[1]]
    assert "test_r0.5_MAE" in histories[1][0] and "test_r0.5_MAE" not in histories[0][0]


def test_each_metric_keeps_its_best_test_epoch_f1_that_of_its_accuracy(data):
    recipe = training.Recipe(epochs=6, patience=6, lr=5e-3)
    watch = training.TestSelection(data["test"], "mosi")
    training.seed_all(4)
    net = late_fusion.build(data.info, late_fusion.OPTIONS(hidden=16)).make_net()
    history = training.fit(net, data["train"], data["valid"], 4, recipe, test_selection=watch)
    assert set(watch.states) == set(metrics.METRICS["mosi"])
    for name in ("MAE", "Non0_acc_2", "Corr"):
        curve = [h[f"test_r0.5_{name}"] for h in history]
        best = int(np.argmin(curve) if name == "MAE" else np.argmax(curve))  # first best: ties keep the earlier
        assert watch.epoch[name] == best + 1 and watch.best[name] == curve[best]
        net.load_state_dict(watch.states[name])
        pred = training.predict_split(net, data["test"], watch.view)
        assert metrics.compute(pred, data["test"].labels, "mosi")[name] == watch.best[name]
    assert len({h["test_r0.5_MAE"] for h in history}) == len(history)  # every epoch scored anew
    # as LNLN's code: an F1 is read at its accuracy's checkpoint, never chosen on its own
    for f1, accuracy in (("Non0_F1_score", "Non0_acc_2"), ("Has0_F1_score", "Has0_acc_2")):
        at = watch.epoch[accuracy]
        assert watch.epoch[f1] == at and watch.best[f1] == history[at - 1][f"test_r0.5_{f1}"]
        assert watch.states[f1] is watch.states[accuracy]
    # LNLN's view: r = 0.5 for T, A and V, masks of seed 1111 whatever the training seed
    again = masking.drop(data["test"], masking.draws(data["test"], 1111, "mmsa"), {"T": 0.5, "A": 0.5, "V": 0.5})
    assert np.array_equal(again.audio, watch.view.audio) and np.array_equal(again.text, watch.view.text)


def test_harness_hands_test_only_to_a_model_that_asks_and_marks_its_results(data, tmp_path):
    proto, shipped = lnln_like(), protocols.load("synth-intra")
    valid_sel, valid_shipped = runner.run_job(submission.load(f"late-fusion:{FAST}"), data, [proto, shipped], 1)
    logs = []
    sub = submission.load(TEST_SELECTED + "MAE")
    assert sub.name == "late-fusion[epochs=4,hidden=16,patience=4,selection=test-per-metric,selection_metric=MAE]"
    unit, unit_shipped = runner.run_job(sub, data, [proto, shipped], 1)
    assert unit.manifest["selects_on_test"] is True and valid_sel.manifest["selects_on_test"] is False
    # MAE at the selection condition is the smallest any epoch reached: never above the valid-selected one
    mae = {u.model: u.metrics["conditions"]["r=0.5"]["MAE"] for u in (unit, valid_sel)}
    assert mae[unit.model] <= mae[valid_sel.model]
    # one training made every metric's checkpoint: another metric's variant loads its own, no retraining
    model = submission.load(TEST_SELECTED + "Non0_acc_2").build(data.info)
    model.log = logs.append
    runner.fit(model, data, 1)
    assert any("loaded checkpoint" in m for m in logs) and model.history == []
    with pytest.raises(MsabenchError, match="needs the test split"):
        model.fit(data["train"], data["valid"], 1)

    out = tmp_path / "res"
    for u in (unit_shipped, valid_shipped):
        results.write_unit(out, u)
    with pytest.raises(MsabenchError, match="selection=test-per-metric.*--allow-test-selection"):
        leaderboard.write(out, tmp_path / "lb", settings=board.Settings(n_resamples=200, figures=False))
    assert not (tmp_path / "lb" / "README.md").exists()
    leaderboard.write(out, tmp_path / "lb", settings=board.Settings(n_resamples=200, figures=False,
                                                                          allow_test_selection=True))
    text = (tmp_path / "lb" / "README.md").read_text()
    assert "(checkpoints selected on TEST)" in text and "LNLN's protocol flaw" in text
    paired = compare.pair(out, "synth-intra", valid_sel.model, unit.model)
    assert paired.selected_on_test == (unit.model,) and "TEST split" in paired.note()
    assert paired.only(["r=0"]).selected_on_test == (unit.model,)
    assert compare.pair(out, "synth-intra", unit.model, valid_sel.model).selected_on_test == (unit.model,)


def test_the_watched_training_serves_the_valid_selected_variant(data, tmp_path, monkeypatch):
    """A test-selected run saves the validation-selected weights of the same training, which its valid variant
    loads instead of training again: the weights a fresh, unwatched training gives, bit for bit."""
    runner.fit(submission.load(TEST_SELECTED + "Corr").build(data.info), data, 7)
    logs = []
    plain = submission.load(f"late-fusion:{FAST}").build(data.info)
    plain.log = logs.append
    runner.fit(plain, data, 7)
    assert any("loaded checkpoint" in m for m in logs) and plain.history == []
    monkeypatch.setenv("MSABENCH_CACHE", str(tmp_path / "fresh"))
    fresh = submission.load(f"late-fusion:{FAST}").build(data.info)
    runner.fit(fresh, data, 7)
    assert fresh.history  # trained here, unwatched
    for a, b in zip(plain.net.state_dict().values(), fresh.net.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


@pytest.mark.parametrize("spec, message", [
    ("late-fusion:selection=test", "selection must be 'valid' or 'test-per-metric'"),
    ("late-fusion:selection=test-per-metric", "needs selection_metric, one of"),
    ("late-fusion:selection=test-per-metric,selection_metric=Acc_7", "needs selection_metric, one of"),
    ("late-fusion:selection_metric=MAE", "selection_metric='MAE' needs selection=test-per-metric"),
])
def test_bad_selection_options_are_one_line(spec, message):
    with pytest.raises(MsabenchError, match=message):
        submission.load(spec)


def test_a_metric_of_the_other_family_is_refused_against_the_data(data):
    sub = submission.load("late-fusion:selection=test-per-metric,selection_metric=Mult_acc_3")  # a SIMS metric
    with pytest.raises(MsabenchError, match="one of Has0_acc_2"):
        sub.check(data.info, 0)


def test_cli_leaderboard_refuses_then_shows_when_asked(data, tmp_path, capsys):
    unit = runner.run_unit(submission.load(TEST_SELECTED + "Corr"), data, protocols.load("synth-intra"), 2)
    results.write_unit(tmp_path / "res", unit)
    assert json.loads((results.find_units(tmp_path / "res")[0] / "manifest.json").read_text())["selects_on_test"]
    args = ["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"), "--no-figures",
            "--resamples", "200"]
    assert cli.main(args) != 0
    assert "--allow-test-selection" in capsys.readouterr().err
    assert cli.main(args + ["--allow-test-selection"]) == 0
