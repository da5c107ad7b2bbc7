"""The one training recipe every bundled model uses, and the checkpoint cache.

- Missing-modality augmentation as in LNLN: for each sample and modality a drop rate
  r ~ U[0, 1), with half of the samples kept complete, applied by the same masking
  code the protocols use (so training and evaluation corrupt inputs identically).
- AdamW, linear warm-up then cosine decay, L1 loss (MMSA's regression loss) plus
  whatever auxiliary losses a model adds.
- Optional Gaussian input noise (`input_noise`, off by default): N(0, s^2) added to every
  observed (non-zero) feature vector of text features, audio and vision in training, the
  same draw in the clean and the corrupted view (rows the augmentation left complete stay
  identical in both). For a linear model this is the ridge penalty (Bishop, 1995); it
  suits small utterance-level feature sets whose training features are cleaner than the
  test ones (see msabench.data.table).
- Early stopping and checkpoint selection on the VALIDATION split only (never test),
  on MAE over a fixed corrupted view and the clean view of it. `TestSelection` reproduces
  LNLN's flawed alternative on purpose, to measure it: the same run, watched on the test
  split, keeping one checkpoint per metric (see its docstring).
- Full seed control: python, numpy and torch seeded, deterministic algorithms, so the
  same seed gives the same weights on the same device, thread count and software
  (`msabench.devices` states the contract per device). Batches move to the device once;
  bf16 runs under autocast with float32 weights; the input-noise draws are made on the
  CPU, so they do not depend on the device.
- Two learning rates: the parameters of a pretrained text encoder (any module named
  `bert`) get `bert_lr` (MMSA fine-tunes BERT at 5e-5), everything else `lr`. A recipe may
  give groups a model names (`Recipe.groups`, `BaselineNet.parameter_group`) their own
  learning rate and weight decay (TETFN's port trains audio, video and the rest apart).
- A reference method's authors' recipe may use Adam instead of AdamW, a constant learning
  rate, and gradients summed over several batches per step (`Recipe.accumulate`).
Checkpoints are cached under a fingerprint of everything that determines the weights.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from msabench import devices, masking, metrics, progress
from msabench.data.core import MODALITIES, Split, hash_array
from msabench.errors import MsabenchError
from msabench.interface import Batch


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.1  # fraction of all steps ("cosine", "linear") or of all epochs ("epoch-cosine")
    # "cosine": warm-up then cosine decay over steps (msabench); "epoch-cosine": LNLN's and ALMT's code (linear
    # warm-up from 0, then cosine over (1 - warmup) * epochs, set once per epoch); "linear": CENet's code
    # (warm-up, then linear decay to 0 over steps)
    schedule: str = "cosine"
    patience: int = 6  # epochs without a better valid MAE before stopping; 0: never (the authors' code)
    augment: bool = True  # joint missing augmentation (`augmentation`)
    complete_fraction: float = 0.5  # share of training samples left complete
    complete_per_modality: bool = False  # which samples stay complete: drawn per modality (LNLN's code), not jointly
    grad_clip: float = 1.0
    input_noise: float = 0.0  # std of Gaussian noise on observed float input features in training; 0: off
    bert_lr: float = 5e-5  # learning rate of a pretrained text encoder's parameters
    loss: str = "l1"  # the task loss of models that take it from the recipe ("mse": the authors' code)
    # "adamw" (msabench); "adam": torch's Adam, whose weight decay is an L2 term added to the gradient (MMSA's trainers)
    optimizer: str = "adamw"
    # batches whose gradients are summed before one optimiser step; the batches left over at an epoch's end make no
    # step (MMSA's `update_epochs`: its trainers drop them). 1: a step after every batch
    accumulate: int = 1
    # (group, lr, weight decay) for parameter groups a model names (`BaselineNet.parameter_group`); parameters in no
    # listed group keep `lr` (`bert_lr` for a pretrained text encoder) and `weight_decay`
    groups: tuple = ()


def one_thread():
    """Run torch on one CPU thread inside `with` (the exact single-thread mode), then restore."""
    return devices.threads(1)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def tensors(batch: Batch, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A batch as torch tensors on `device`; float inputs in `dtype`, ids/masks/lengths int64."""
    out = {}
    for key, value in batch.to_torch().items():
        if key == "ids":
            continue
        out[key] = (value.to(dtype) if value.is_floating_point() else value.long()).to(device, non_blocking=True)
    return out


def augmentation(split: Split, seed: int, complete_fraction: float, per_modality: bool = False) -> masking.Observed:
    """Missing augmentation of a whole split: r ~ U[0, 1) per sample and modality, and samples left complete:
    jointly (msabench's shared recipe: each sample with probability `complete_fraction`, complete in all
    three modalities at once) or `per_modality` (LNLN's released code: in each modality, exactly
    floor(n * complete_fraction) samples chosen apart)."""
    rng = np.random.default_rng(seed)
    n = len(split)
    rates = rng.uniform(0.0, 1.0, size=(n, len(MODALITIES)))
    if per_modality:
        for i in range(len(MODALITIES)):
            rates[rng.choice(n, int(n * complete_fraction), replace=False), i] = 0.0
    else:
        rates[rng.random(n) < complete_fraction] = 0.0
    u = masking.draws(split, seed, "hash")
    return masking.drop(split, u, {m: rates[:, i] for i, m in enumerate(MODALITIES)})


NOISY_INPUTS = ("text_features", "audio", "vision")


def add_input_noise(clean: dict, corrupted: dict, std: float, gen: torch.Generator) -> None:
    """In place: the same N(0, std^2) draw on the observed (non-zero) feature vectors of both views."""
    for key in NOISY_INPUTS:
        if key not in clean:
            continue
        noise = torch.randn(clean[key].shape, generator=gen, dtype=clean[key].dtype) * std
        for view in (clean, corrupted):
            observed = (view[key] != 0).any(-1, keepdim=True)
            view[key] = view[key] + noise * observed


def complete(split: Split) -> masking.Observed:
    pads = masking.valid(split)
    return masking.Observed(pads["T"], pads["A"], pads["V"])


def lr_factor(recipe: Recipe, steps_per_epoch: int):
    """The learning-rate factor of each optimiser step under the recipe's schedule."""
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "cosine":
        return _schedule(total, recipe.warmup)
    if recipe.schedule == "constant":  # no scheduler (MMSA's trainers)
        return lambda step: 1.0
    if recipe.schedule == "linear":  # CENet's WarmupLinearSchedule
        warm = recipe.warmup * total
        return lambda step: step / max(1.0, warm) if step < warm else max(0.0, (total - step) / max(1.0, total - warm))
    if recipe.schedule == "epoch-cosine":  # LNLN's and ALMT's GradualWarmupScheduler + CosineAnnealingLR
        warm, span = recipe.warmup * recipe.epochs, (1.0 - recipe.warmup) * recipe.epochs

        def factor(step: int) -> float:
            epoch = step // steps_per_epoch
            if epoch <= warm:
                return epoch / warm if warm > 0 else 1.0
            return 0.5 * (1.0 + math.cos(math.pi * (epoch - math.floor(warm) - 1) / span))

        return factor
    raise MsabenchError(f"recipe schedule {recipe.schedule!r}: expected 'cosine', 'epoch-cosine', 'linear' or "
                        "'constant'")


def _schedule(total_steps: int, warmup: float):
    warm = max(1, int(round(total_steps * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def predict_split(net, split: Split, obs: masking.Observed, batch_size: int = 256,
                  compute: devices.Compute | None = None) -> np.ndarray:
    compute = compute or CPU
    net.eval()
    out = []
    with torch.no_grad(), compute.autocast():
        for start in range(0, len(split), batch_size):
            batch, _ = masking.corrupt(split, obs, slice(start, start + batch_size), reveal=False)
            out.append(net(tensors(batch, device=compute.device)).pred.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


CPU = devices.Compute("cpu", "fp32", 0)  # what `fit` and `predict_split` use when not told


def param_groups(net, recipe: Recipe) -> list[dict]:
    """Optimiser groups: a pretrained encoder's parameters (modules named `bert`) at `bert_lr`, the rest at `lr`;
    then, where the recipe lists groups (`Recipe.groups`), the parameters the model puts in one of them
    (`net.parameter_group(name)`) at that group's lr and weight decay, in the recipe's order."""
    settings = {name: (lr, decay) for name, lr, decay in recipe.groups}
    named = getattr(net, "parameter_group", None) if settings else None
    pretrained, rest, listed = [], [], {name: [] for name in settings}
    for name, p in net.named_parameters():
        group = named(name) if named is not None else None
        if group in listed:
            listed[group].append(p)
        else:
            (pretrained if "bert" in name.split(".") else rest).append(p)
    groups = [{"params": rest, "lr": recipe.lr}]
    if pretrained:
        groups.append({"params": pretrained, "lr": recipe.bert_lr})
    for name, params in listed.items():
        if params:
            lr, decay = settings[name]
            groups.append({"params": params, "lr": lr, "weight_decay": decay})
    return groups


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


F1_AT_ACCURACY = {"Has0_F1_score": "Has0_acc_2", "Non0_F1_score": "Non0_acc_2", "F1_score": "Mult_acc_2"}
TEST_SELECTION_RATE = 0.5  # LNLN evaluates its checkpoints on test at r = 0.5 ...
TEST_SELECTION_MASK_SEED = 1111  # ... with masks drawn by np.random.seed(1111) for every training seed


class TestSelection:
    """LNLN's checkpoint selection, reproduced to be measured, never to be used for a claim.

    LNLN's code keeps the weights of the epoch where a metric was best on the TEST split at
    r = 0.5 (all modalities; masks from seed 1111, MMSA's draw): a protocol flaw. As its code
    (core/utils.py, get_best_results), an F1 has no checkpoint of its own: it is read at its
    Acc-2's (Has0, Non0; Mult_acc_2 on SIMS); MAE, Corr, Acc-5 and Acc-7 each on their own.
    Watching changes nothing in training: the stopping rule and the trajectory are those of
    the valid-selected run (evaluation draws no random numbers), so the two differ only in
    which epoch's weights are kept. Ties keep the earlier epoch.
    """

    __test__ = False  # not a pytest class

    def __init__(self, test: Split, kind: str):
        self.split = test
        u = masking.draws(test, TEST_SELECTION_MASK_SEED, "mmsa")
        self.view = masking.drop(test, u, {m: TEST_SELECTION_RATE for m in MODALITIES})
        self.labels = test.labels.astype(np.float64)
        self.kind = kind
        self.best: dict[str, float] = {}
        self.epoch: dict[str, int] = {}
        self.states: dict[str, dict] = {}

    def update(self, net, epoch: int, compute: devices.Compute | None = None) -> dict[str, float]:
        scores = metrics.compute(predict_split(net, self.split, self.view, compute=compute), self.labels, self.kind)
        state = None
        for name, value in scores.items():
            if name in F1_AT_ACCURACY:
                continue
            old = self.best.get(name)
            if old is None or (math.isfinite(value) and (
                    not math.isfinite(old) or (value < old if name in metrics.LOWER_IS_BETTER else value > old))):
                state = state if state is not None else copy.deepcopy(net.state_dict())
                self.best[name], self.epoch[name], self.states[name] = value, epoch, state
        for f1, accuracy in F1_AT_ACCURACY.items():
            if f1 in scores and self.epoch.get(accuracy) == epoch:
                self.best[f1], self.epoch[f1], self.states[f1] = scores[f1], epoch, self.states[accuracy]
        return scores


def fit(net, train: Split, valid: Split, seed: int, recipe: Recipe, log=None,
        compute: devices.Compute | None = None, test_selection: TestSelection | None = None) -> list[dict]:
    """Train `net` in place on `compute`'s device and leave it at the epoch with the best validation MAE.

    `net(x)` returns an object with `.pred` [B]; `net.training_loss(clean, corrupted, y)`
    returns (loss, {name: value}). Returns the per-epoch history. `test_selection`, if
    given, watches every epoch on the test split (LNLN's flaw, reproduced to measure it).
    A net with `begin_batch(epoch, rows, n)` is told, before each training batch, the epoch (from 0)
    and the batch's rows in the training split of n samples (per-sample state such as TETFN's labels).
    """
    compute = compute or CPU
    devices.prepare(compute)
    seed_all(seed)
    net.to(compute.device)
    rng = np.random.default_rng(seed)
    n = len(train)
    batches = math.ceil(n / recipe.batch_size)
    steps = batches if recipe.accumulate == 1 else max(1, batches // recipe.accumulate)  # optimiser steps an epoch
    if recipe.optimizer not in OPTIMIZERS:
        raise MsabenchError(f"recipe optimizer {recipe.optimizer!r}: expected {' or '.join(map(repr, OPTIMIZERS))}")
    if recipe.accumulate < 1:
        raise MsabenchError(f"recipe accumulate must be >= 1, got {recipe.accumulate!r}")
    opt = OPTIMIZERS[recipe.optimizer](param_groups(net, recipe), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(recipe, steps))
    begin_batch = getattr(net, "begin_batch", None)  # a model that keeps per-sample training state is told the rows
    clean_train = complete(train)
    valid_views = [complete(valid)]
    if recipe.augment:
        valid_views.append(augmentation(valid, seed + 7919, recipe.complete_fraction, recipe.complete_per_modality))
    y_valid = valid.labels.astype(np.float64)
    best, best_state, stale, history = math.inf, copy.deepcopy(net.state_dict()), 0, []
    noise_gen = torch.Generator().manual_seed(seed * 7 + 104729) if recipe.input_noise else None
    for epoch in range(recipe.epochs):
        t_epoch = time.perf_counter()
        net.train()
        obs = (augmentation(train, seed * 1009 + epoch, recipe.complete_fraction, recipe.complete_per_modality)
               if recipe.augment else clean_train)
        order = rng.permutation(n)
        steps_done = []  # (loss, parts, batch size), read once per epoch: no GPU sync per step
        for batch, start in enumerate(range(0, n, recipe.batch_size)):
            idx = np.sort(order[start:start + recipe.batch_size])
            clean, _ = masking.corrupt(train, clean_train, idx, reveal=False)
            corrupted, _ = masking.corrupt(train, obs, idx, reveal=False)
            y = torch.from_numpy(train.labels[idx].astype(np.float32)).to(compute.device, non_blocking=True)
            clean_t, corrupted_t = tensors(clean), tensors(corrupted)
            if noise_gen is not None:  # drawn on the CPU: the same noise on every device
                add_input_noise(clean_t, corrupted_t, recipe.input_noise, noise_gen)
            clean_t = {k: v.to(compute.device, non_blocking=True) for k, v in clean_t.items()}
            corrupted_t = {k: v.to(compute.device, non_blocking=True) for k, v in corrupted_t.items()}
            if begin_batch is not None:
                begin_batch(epoch, idx, n)
            with compute.training():
                loss, parts = net.training_loss(clean_t, corrupted_t, y)
            loss = loss.float()
            if batch % recipe.accumulate == 0:  # a remainder of the last epoch's batches is dropped here
                opt.zero_grad(set_to_none=True)
            loss.backward()
            if (batch + 1) % recipe.accumulate == 0:
                if recipe.grad_clip:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
                opt.step()
                sched.step()
            steps_done.append((loss.detach(), parts, len(idx)))
        total, parts_sum = 0.0, {}
        for loss_t, parts, size in steps_done:
            total += float(loss_t) * size
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * size
        train_s = time.perf_counter() - t_epoch  # after reading the losses: the device has finished the epoch
        valid_mae = float(np.mean([np.mean(np.abs(predict_split(net, valid, v, compute=compute) - y_valid))
                                   for v in valid_views]))
        improved = valid_mae < best - 1e-6
        if improved:
            best, best_state, stale = valid_mae, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
        row = {"epoch": epoch + 1, "train_loss": total / n, "valid_mae": valid_mae,
               **{k: v / n for k, v in parts_sum.items()},
               "train_s": train_s, "valid_s": time.perf_counter() - t_epoch - train_s}
        if test_selection is not None:
            t_test = time.perf_counter()
            scores = test_selection.update(net, epoch + 1, compute)
            row.update({"test_r0.5_" + k: v for k, v in scores.items()}, test_s=time.perf_counter() - t_test)
        history.append(row)
        if log:
            log(f"epoch {epoch + 1:>3}/{recipe.epochs}  train loss {row['train_loss']:.4f}  "
                f"valid MAE {valid_mae:.4f}{'  *' if improved else ''}")
        if recipe.patience and stale >= recipe.patience:
            break
    net.load_state_dict(best_state)
    net.eval()
    return history


# ---- checkpoint cache ---------------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("MSABENCH_CACHE") or Path.home() / ".cache" / "msabench") / "checkpoints"


def data_fingerprint(*splits: Split) -> str:
    h = hashlib.sha256()
    for s in splits:
        for key, arr in sorted(s.arrays().items()):
            hash_array(h, f"{s.name}/{key}", arr)
    return h.hexdigest()


def fingerprint(**parts) -> str:
    """sha256 of a JSON-able description (options, recipe, data hash, seed, versions, code hash)."""
    import json

    def norm(v):
        if hasattr(v, "__dataclass_fields__"):
            return asdict(v)
        return v

    blob = json.dumps({k: norm(v) for k, v in parts.items()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_checkpoint(path: Path, state: dict, meta: dict) -> None:
    """Atomic: a reader sees the old file, the new file, or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"state_dict": state, "meta": meta}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path, expect: dict) -> dict:
    """The state dict stored at `path`; MsabenchError when unreadable or made for other data/options."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state, meta = blob["state_dict"], blob["meta"]
    except Exception as e:  # torch raises many types for a damaged file
        raise MsabenchError(f"checkpoint {path} is unreadable ({type(e).__name__}); delete it to retrain") from None
    for key, want in expect.items():
        if meta.get(key) != want:
            raise MsabenchError(f"checkpoint {path} was made with {key}={meta.get(key)!r}, "
                                f"but this run has {key}={want!r}")
    return state


def log_to_stderr(prefix: str):
    def log(msg: str) -> None:
        progress.line(f"{prefix}{msg}")  # above the grid's bar when this process has one

    return log
