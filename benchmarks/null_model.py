"""A cheap model that can be retrained many times: bagged ridge on pooled inputs.

Used by benchmarks/calibration.py. Features are the frequencies of the 300 most common
training words plus the mean audio and vision frames; the fit is closed-form ridge on a
bootstrap resample of the training split drawn from (seed, REPLICA). Two REPLICA values
are the same method retrained on different data draws: a true null for `compare`.
"""

from __future__ import annotations

import numpy as np

from msabench.data.core import DatasetInfo, Split
from msabench.interface import Batch, Mask

REPLICA = 0  # the calibration benchmark writes copies of this file with other values
WORDS, ALPHA = 300, 10.0


def _pooled(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    valid = np.arange(frames.shape[1])[None, :] < lengths[:, None]
    return (frames * valid[..., None]).sum(1) / np.maximum(valid.sum(1, keepdims=True), 1)


class BaggedRidge:
    name = f"bagged-ridge-{REPLICA}"

    def __init__(self, info: DatasetInfo):
        self.info = info

    def _features(self, text_ids, text_mask, audio, audio_lengths, vision, vision_lengths) -> np.ndarray:
        hits = (text_ids[:, :, None] == self.words[None, None, :]) & (text_mask[:, :, None] > 0)
        words = hits.sum(1) / np.maximum(text_mask.sum(1, keepdims=True), 1)
        x = np.concatenate([words, _pooled(audio, audio_lengths), _pooled(vision, vision_lengths)], axis=1)
        return (x - self.mu) / self.sd if hasattr(self, "mu") else x

    def fit(self, train: Split, valid: Split, seed: int) -> None:
        ids = train.text_ids[train.text_mask > 0]
        vocab, counts = np.unique(ids[ids > 102], return_counts=True)
        self.words = vocab[np.argsort(-counts, kind="stable")[:WORDS]]
        rng = np.random.default_rng([seed, REPLICA])
        rows = rng.integers(0, len(train), len(train))
        x = self._features(train.text_ids[rows], train.text_mask[rows], train.audio[rows], train.audio_lengths[rows],
                           train.vision[rows], train.vision_lengths[rows])
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        x = (x - self.mu) / self.sd
        y = train.labels[rows].astype(np.float64)
        self.b0 = y.mean()
        self.w = np.linalg.solve(x.T @ x + ALPHA * np.eye(x.shape[1]), x.T @ (y - self.b0))

    def predict(self, batch: Batch, mask: Mask) -> np.ndarray:
        x = self._features(batch.text_ids, batch.text_mask, batch.audio, batch.audio_lengths, batch.vision,
                           batch.vision_lengths)
        return x @ self.w + self.b0


def build(info: DatasetInfo) -> BaggedRidge:
    return BaggedRidge(info)
