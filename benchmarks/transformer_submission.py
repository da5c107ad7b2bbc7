"""A model with the forward cost of a typical MSA baseline, for the harness-overhead benchmark.

Token embeddings + a 2-layer Transformer encoder over the text, a 1-layer encoder over
each of audio and vision, mean pooling, an MLP head (width 32, float32). Weights are
left at their seeded initialisation: the benchmark times forward passes, whose cost
does not depend on the weights' values.
"""

import torch
from torch import nn


class TransformerMSA(nn.Module):
    def __init__(self, info, d=32):
        super().__init__()
        self.embed = nn.Embedding(30522, d)
        self.pos = nn.Parameter(torch.zeros(info.text_len, d))
        self.text = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, batch_first=True), 2, enable_nested_tensor=False)
        self.audio_in, self.vision_in = nn.Linear(info.audio_dim, d), nn.Linear(info.vision_dim, d)
        self.audio = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, batch_first=True), 1, enable_nested_tensor=False)
        self.vision = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, batch_first=True), 1, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, 1))

    @staticmethod
    def pool(x, valid):
        valid = valid.unsqueeze(-1).to(x.dtype)
        return (x * valid).sum(1) / valid.sum(1).clamp(min=1.0)

    def forward(self, b):
        t_valid = b["text_mask"].bool()
        t = self.text(self.embed(b["text_ids"]) + self.pos, src_key_padding_mask=~t_valid)
        a_valid = torch.arange(b["audio"].shape[1])[None] < b["audio_lengths"][:, None]
        v_valid = torch.arange(b["vision"].shape[1])[None] < b["vision_lengths"][:, None]
        a = self.audio(self.audio_in(b["audio"]), src_key_padding_mask=~a_valid)
        v = self.vision(self.vision_in(b["vision"]), src_key_padding_mask=~v_valid)
        z = torch.cat([self.pool(t, t_valid), self.pool(a, a_valid), self.pool(v, v_valid)], 1)
        return self.head(z).squeeze(-1)


class Model:
    name = "transformer-bench"

    def __init__(self, info):
        torch.manual_seed(0)
        self.net = TransformerMSA(info).eval()

    def predict(self, batch, mask):
        with torch.no_grad():
            return self.net(batch.to_torch())


def build(info):
    return Model(info)
