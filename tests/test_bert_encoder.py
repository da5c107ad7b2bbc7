"""`text_encoder=bert` with local Hugging Face weights: a tiny BERT made and saved here."""

import numpy as np
import pytest

from msabench import protocols, runner, submission
from msabench.errors import MsabenchError

from conftest import small_dataset

transformers = pytest.importorskip("transformers", reason="transformers is not installed")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_bert_text_encoder_trains_and_predicts(tiny_bert):
    data = small_dataset(sizes=(60, 20, 30))
    sub = submission.load(f"text-only:text_encoder=bert,bert_path={tiny_bert},hidden=16,epochs=2")
    unit = runner.run_unit(sub, data, protocols.load("synth-inter"), 1)
    assert np.isfinite(unit.predictions).all()
    assert np.unique(unit.predictions).size > 5


def test_missing_weights_are_one_clear_error(tmp_path):
    data = small_dataset(sizes=(20, 10, 10))
    sub = submission.load(f"text-only:text_encoder=bert,bert_path={tmp_path / 'none'}")
    with pytest.raises(MsabenchError, match="text_encoder=bert needs a folder with local weights, or minilm; got '.*none'"):
        runner.run_unit(sub, data, protocols.load("synth-inter"), 1)
