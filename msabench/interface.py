"""The contract between msabench and a model: `Batch` in, one score per sample out.

A submission is one Python file that defines `build(info)` returning a model (or a
single model class, which is called with `info`). The model has

    predict(batch: Batch, mask: Mask) -> array-like of shape [B]   (torch or numpy)
    fit(train: Split, valid: Split, seed: int) -> None              (optional)
    name: str                                                       (optional)

`batch` holds the inputs AFTER the protocol's corruption and never labels. `mask`
says which positions are observed when the protocol reveals it; otherwise it only
marks padding, so a model cannot tell a dropped token from a real one, as in LNLN.
`fit` gets the clean train split (labels included) and the valid split for model
selection; the evaluation split never reaches a submission's process with its labels
(msabench.ingestion). The one exception reproduces a protocol flaw on purpose, to
measure it, and only for bundled models: one whose `selects_on_test` is True gets
`fit(train, valid, seed, test=test)` (`selection=test-per-metric`, LNLN's checkpoint
choice); its results say so and the leaderboard refuses them unless asked. A submission
file that sets it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, eq=False)
class Batch:
    """Model inputs for B samples; numpy arrays, MMSA layout.

    Dropped tokens already read [UNK] (id 100), dropped frames are zero vectors,
    and a whole missing modality is all [UNK] / zeros. The attention mask and the
    lengths are those of the clean data (the community's convention).
    """

    ids: np.ndarray  # [B] str, "videoid$_$clip"
    text_mask: np.ndarray  # [B, L] int64 attention mask
    audio: np.ndarray  # [B, Ta, Da] float32
    audio_lengths: np.ndarray  # [B] int64
    vision: np.ndarray  # [B, Tv, Dv] float32
    vision_lengths: np.ndarray  # [B] int64
    text_ids: np.ndarray | None = None  # [B, L] int64
    text_features: np.ndarray | None = None  # [B, L, Dt] float32

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows(self, index: slice) -> "Batch":
        """A sub-batch (views, no copies)."""
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                        for f in fields(self)})

    def to_torch(self, device: Any = None) -> dict[str, Any]:
        """The numeric fields as torch tensors (ids stay a numpy array)."""
        import torch

        out: dict[str, Any] = {"ids": self.ids}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "ids" and value is not None:
                # contiguous and writable (arrays from Ray's object store are read-only)
                out[f.name] = torch.from_numpy(np.require(value, requirements=["C", "W"])).to(device)
        return out


@dataclass(frozen=True, eq=False)
class Mask:
    """Observed positions, True = observed. Without `revealed`, padding only."""

    text: np.ndarray  # [B, L] bool
    audio: np.ndarray  # [B, Ta] bool
    vision: np.ndarray  # [B, Tv] bool
    revealed: bool

    def rows(self, index: slice) -> "Mask":
        return Mask(self.text[index], self.audio[index], self.vision[index], self.revealed)

    def modalities(self) -> np.ndarray:
        """[B, 3] bool: whether T, A, V have any observed position."""
        return np.stack([self.text.any(1), self.audio.any(1), self.vision.any(1)], axis=1)


@runtime_checkable
class Model(Protocol):
    """The contract every submission's model meets (checked by `submission.Submission.build`);
    `fit(train, valid, seed)` is optional."""

    def predict(self, batch: Batch, mask: Mask) -> Any: ...
