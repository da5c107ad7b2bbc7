"""`late-fusion`: one encoder per modality, mean-pooled, concatenated, an MLP.

The plain multimodal reference: anything a missing-modality method claims has to beat
this under the same recipe, masks and seeds.
"""

import torch

from msabench.torch_baseline import BaselineNet, Encoders, Options, Output, TorchBaseline, head, masked_mean

OPTIONS = Options
VERSION = 1  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = "Late fusion"  # its name in tables and figures (the paper's)


class Net(BaselineNet):
    def __init__(self, info, opts):
        super().__init__()
        self.encoders = Encoders(info, opts)
        self.head = head(3 * opts.hidden, opts.hidden, 1, opts.dropout)

    def forward(self, x):
        pooled = [masked_mean(seq, valid) for seq, valid in self.encoders(x).values()]
        return Output(self.head(torch.cat(pooled, dim=-1)).squeeze(-1), {})


class LateFusion(TorchBaseline):
    name = "late-fusion"

    def make_net(self):
        return Net(self.info, self.options)


def build(info, options=None):
    return LateFusion(info, options)
