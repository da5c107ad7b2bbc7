"""Example submission: a small bag-of-words + pooled-frames regressor. Copy it to start.

A submission is one Python file defining `build(info)`, which returns an object with
    fit(train, valid, seed)                train on the clean train split; pick epochs on valid
    predict(batch, mask) -> [B] scores     one sentiment score per sample (torch or numpy)
Its results are stored under the file's name (example), or under a module-level NAME.
msabench corrupts the test inputs (drops tokens/frames/modalities) BEFORE `predict` sees
them: dropped tokens read [UNK] (id 100), dropped frames are zero vectors, and attention
masks/lengths are those of the clean data. Unless the protocol reveals it, `mask` only
marks padding, so this model ignores it.

The model (~100k weights; trains in a few seconds on one CPU core):
    text   = mean of token embeddings over the attention mask (one vector per sample)
    audio  = mean of the audio frames over the valid length, vision likewise
    score  = MLP([text, audio, vision])
trained on the clean train split with an L1 loss and Adam, keeping the epoch with the
best validation MAE. Everything is seeded, so the same seed gives the same scores, and
a sample's score is bit-identical whatever batch it arrives in (see RowwiseLinear).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from msabench.data.core import UNK_ID, DatasetInfo, Split
from msabench.interface import Batch, Mask

VOCAB = 30522  # bert-base-uncased; larger ids (other tokenizers) count as never seen
EMBED, HIDDEN, DROPOUT = 32, 64, 0.1
EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY = 25, 32, 3e-3, 1e-5


class RowwiseLinear(nn.Linear):
    """nn.Linear computed one row at a time: multiply, then sum over the inputs.

    A BLAS matrix product takes different code paths for different batch sizes (1 row,
    7 rows, 64 rows), so the same sample could score differently in the last bit
    depending on the batch it arrived in. Here every output is the same sum in the
    same order whatever the batch, so scores are bit-identical for any batch size.
    The cost (a [B, in, out] temporary) is nothing at this size.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(-1) * self.weight.t()).sum(1) + self.bias


class _OneThread:
    """Run torch on one CPU thread inside `with`, then restore the caller's setting.

    Ops this small gain nothing from threads, and competing for cores with other
    processes made training several times slower. One thread also keeps every
    floating-point sum in the same order from run to run.
    """

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, T, D] over the positions where valid [B, T] is True."""
    valid = valid.to(x.dtype).unsqueeze(-1)
    return (x * valid).sum(1) / valid.sum(1).clamp(min=1.0)


class Net(nn.Module):
    def __init__(self, info: DatasetInfo, train_words: np.ndarray):
        super().__init__()
        self.use_ids = info.has_text_ids
        if self.use_ids:
            # Only words seen in training get an embedding: row 0 stands for every word
            # never seen in training, row 1 is [UNK], rows 2.. the training words.
            # All rows start at zero, so a word contributes only what training taught it.
            # Clean training data has no [UNK], so its row stays zero: a dropped token
            # adds nothing to the sum but still counts in the mean, and the text vector
            # shrinks as tokens go missing. (Train with token dropout to let [UNK] learn.)
            rows = torch.zeros(VOCAB, dtype=torch.int64)
            rows[UNK_ID] = 1
            rows[torch.from_numpy(train_words)] = torch.arange(2, 2 + len(train_words))
            self.register_buffer("rows", rows)
            self.embed = nn.Embedding(2 + len(train_words), EMBED)
            nn.init.zeros_(self.embed.weight)
        else:  # datasets that ship token features (e.g. BERT outputs) instead of ids
            self.text_proj = RowwiseLinear(info.text_feature_dim, EMBED)
        # Audio/vision are divided by their train-set spread (set in fit), not centred:
        # a fully dropped modality (all zero frames) then stays an all-zero input.
        self.register_buffer("audio_scale", torch.ones(info.audio_dim))
        self.register_buffer("vision_scale", torch.ones(info.vision_dim))
        self.mlp = nn.Sequential(
            RowwiseLinear(EMBED + info.audio_dim + info.vision_dim, HIDDEN),
            nn.ReLU(),
            nn.Dropout(DROPOUT),
            RowwiseLinear(HIDDEN, 1),
        )

    def pooled_frames(self, x: dict) -> tuple[torch.Tensor, torch.Tensor]:
        steps_a = torch.arange(x["audio"].shape[1])
        steps_v = torch.arange(x["vision"].shape[1])
        audio = _masked_mean(x["audio"], steps_a[None, :] < x["audio_lengths"][:, None])
        vision = _masked_mean(x["vision"], steps_v[None, :] < x["vision_lengths"][:, None])
        return audio, vision

    def forward(self, x: dict) -> torch.Tensor:
        mask = x["text_mask"] > 0
        if self.use_ids:
            ids = x["text_ids"]
            rows = torch.where(ids < VOCAB, self.rows[ids.clamp(0, VOCAB - 1)], 0)  # unknown ids: row 0
            text = _masked_mean(self.embed(rows), mask)
        else:
            text = self.text_proj(_masked_mean(x["text_features"], mask))
        audio, vision = self.pooled_frames(x)
        features = torch.cat([text, audio / self.audio_scale, vision / self.vision_scale], dim=1)
        return self.mlp(features).squeeze(-1)


def _tensors(data: Split | Batch) -> dict:
    """The numeric inputs of a Split or a Batch (same field names) as torch tensors."""
    def t(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))

    out = {
        "text_mask": t(data.text_mask, np.int64),
        "audio": t(data.audio, np.float32),
        "audio_lengths": t(data.audio_lengths, np.int64),
        "vision": t(data.vision, np.float32),
        "vision_lengths": t(data.vision_lengths, np.int64),
    }
    if data.text_ids is not None:
        out["text_ids"] = t(data.text_ids, np.int64)
    if data.text_features is not None:
        out["text_features"] = t(data.text_features, np.float32)
    return out


class ExampleModel:
    def __init__(self, info: DatasetInfo):
        # Text ids are used when the dataset has them, else its token features.
        if not info.has_text_ids and info.text_feature_dim is None:
            raise ValueError("example model: the dataset has neither text ids nor text features")
        self.info = info
        self.net: Net | None = None

    def fit(self, train: Split, valid: Split, seed: int) -> None:
        with _OneThread():
            self._fit(train, valid, seed)

    def _fit(self, train: Split, valid: Split, seed: int) -> None:
        # Seed everything this model draws from (weights, dropout, shuffling); same seed,
        # same weights. use_deterministic_algorithms is process-wide: torch then raises
        # instead of silently running an op that has no deterministic implementation.
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        torch.use_deterministic_algorithms(True)
        words = np.zeros(0, dtype=np.int64)
        if train.text_ids is not None:
            words = np.unique(train.text_ids[train.text_mask > 0])
            words = words[(words != UNK_ID) & (words >= 0) & (words < VOCAB)]
        net = Net(self.info, words)
        x_train, x_valid = _tensors(train), _tensors(valid)
        y_train = torch.from_numpy(np.asarray(train.labels, dtype=np.float32))
        y_valid = np.asarray(valid.labels, dtype=np.float64)
        with torch.no_grad():
            audio, vision = net.pooled_frames(x_train)
            net.audio_scale.copy_(audio.pow(2).mean(0).sqrt().clamp(min=1e-6))
            net.vision_scale.copy_(vision.pow(2).mean(0).sqrt().clamp(min=1e-6))
        opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        best_mae, best_state = np.inf, None
        for _ in range(EPOCHS):
            net.train()
            order = rng.permutation(len(train))
            for start in range(0, len(order), BATCH_SIZE):
                idx = torch.from_numpy(order[start : start + BATCH_SIZE])
                x = {k: v[idx] for k, v in x_train.items()}
                loss = nn.functional.l1_loss(net(x), y_train[idx])  # L1: MAE is a headline metric
                opt.zero_grad()
                loss.backward()
                opt.step()
            # Model selection on the VALID split (never on test).
            net.eval()
            with torch.no_grad():
                mae = float(np.mean(np.abs(net(x_valid).numpy() - y_valid)))
            if mae < best_mae:
                best_mae, best_state = mae, copy.deepcopy(net.state_dict())
        net.load_state_dict(best_state)
        net.eval()
        self.net = net

    def predict(self, batch: Batch, mask: Mask) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("example model: predict called before fit")
        self.net.eval()  # no dropout: deterministic scores
        with torch.no_grad(), _OneThread():
            return self.net(_tensors(batch)).numpy()


def build(info: DatasetInfo) -> ExampleModel:
    return ExampleModel(info)
