"""`mean`: predicts the training-label mean for every sample, whatever it sees.

The floor every real model must clear: its Acc-2 is the majority-class rate and its
Corr is undefined (constant predictions), so any gain over it is signal, not luck.
"""

import numpy as np

VERSION = 1  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = "Mean (constant)"  # its name in tables and figures (the paper's)


class MeanModel:
    name = "mean"

    def __init__(self, info):
        self.value = 0.0

    def fit(self, train, valid, seed):
        self.value = float(np.mean(train.labels, dtype=np.float64))

    def predict(self, batch, mask):
        return np.full(len(batch), self.value, dtype=np.float64)


def build(info):
    return MeanModel(info)
