"""`text-only`: the text encoder alone (audio and vision ignored), then an MLP.

A reference point: what a model gets from words alone, and so how much the other
modalities add; under inter-modality missing it collapses to the floor without T.
"""

from msabench.torch_baseline import BaselineNet, Options, Output, TextEncoder, TorchBaseline, head, masked_mean

OPTIONS = Options
VERSION = 1  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = "Text only"  # its name in tables and figures (the paper's)


class Net(BaselineNet):
    def __init__(self, info, opts):
        super().__init__()
        self.text = TextEncoder(info, opts)
        self.head = head(opts.hidden, opts.hidden, 1, opts.dropout)

    def forward(self, x):
        seq, valid = self.text(x)
        return Output(self.head(masked_mean(seq, valid)).squeeze(-1), {})


class TextOnly(TorchBaseline):
    name = "text-only"

    def make_net(self):
        return Net(self.info, self.options)


def build(info, options=None):
    return TextOnly(info, options)
