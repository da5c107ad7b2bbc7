import pytest

from msabench import protocols
from msabench.errors import MsabenchError

from conftest import write_file

SHIPPED = ["mosi-intra", "mosi-inter", "mosei-intra", "mosei-inter", "sims-intra", "sims-inter", "synth-intra",
           "synth-inter", "synth-features-intra", "synth-features-inter", "synth-unaligned-intra", "mosi-utt-inter",
           "mosi-utt-intra", "mosi-utt-intra-words", "mosi-utt-inter-tokens", "mosi-intra-per-seed-masks", "mosei-intra-per-seed-masks",
           "sims-intra-per-seed-masks", "synth-sims-intra", "synth-sims-inter"]

BASE = """\
name = "t"
version = 1
dataset = "synth-mosi"
seeds = [1, 2]
primary_metric = "Non0_acc_2"
{extra}
[missing]
kind = "intra"
rates = [0.0, 0.5]
{missing}
"""


def write(tmp_path, extra="", missing="", text=None):
    return write_file(tmp_path / "p.toml", text if text is not None else BASE.format(extra=extra, missing=missing))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_protocols_load(name):
    p = protocols.load(name)
    assert p.name == name
    assert len(p.seeds) == 3
    assert len(p.fingerprint) == 64
    assert all("/" not in c.name for c in p.conditions)


def test_all_shipped_are_listed():
    assert sorted(SHIPPED) == protocols.available()


def test_mosi_intra_is_the_lnln_evaluation():
    p = protocols.load("mosi-intra")
    assert p.kind == "intra" and p.dataset == "mosi" and p.split == "test"
    assert p.seeds == (1111, 1112, 1113)
    assert [c.rates for c in p.conditions] == [(r / 10, r / 10, r / 10) for r in range(10)]
    assert p.reveal_mask is False and p.mask_convention == "mmsa"
    # LNLN's robust evaluation draws the test masks once, with seed 1111, for all three checkpoints
    assert [p.mask_seed(s) for s in p.seeds] == [1111, 1111, 1111]


@pytest.mark.parametrize("data", ["mosi", "mosei", "sims"])
def test_lnln_files_fix_the_mask_seed_and_a_variant_varies_it(data):
    fixed, varied = protocols.load(f"{data}-intra"), protocols.load(f"{data}-intra-per-seed-masks")
    assert fixed.mask_seeds == (1111,) and varied.mask_seeds == ()
    assert [varied.mask_seed(s) for s in varied.seeds] == [1111, 1112, 1113]
    assert (fixed.conditions, fixed.seeds, fixed.dataset, fixed.variant) == (
        varied.conditions, varied.seeds, varied.dataset, varied.variant)


def test_mask_seeds(tmp_path):
    paired = protocols.load(write(tmp_path, extra="mask_seeds = [7, 8]"))
    assert [paired.mask_seed(s) for s in (1, 2)] == [7, 8]
    with pytest.raises(MsabenchError, match="pairs its mask seeds with the training seeds \\[1, 2\\]; seed 3 has none"):
        paired.mask_seed(3)
    default = protocols.load(write(tmp_path))
    spelled = protocols.load(write(tmp_path, extra="mask_seeds = [1, 2]"))  # the default, written out
    assert spelled.fingerprint == default.fingerprint and spelled.mask_seeds == ()
    assert protocols.load(write(tmp_path, extra="mask_seeds = [1]")).fingerprint != default.fingerprint
    for bad, msg in [("[1, 2, 3]", "must give one mask seed for every training seed or as many as 'seeds' \\(2\\), got 3"),
                     ("[-1]", "must be integers in"), ("[true]", "must be integers in"), ("[]", "must give .*, got 0")]:
        with pytest.raises(MsabenchError, match=f"key 'mask_seeds': {msg}"):
            protocols.load(write(tmp_path, extra=f"mask_seeds = {bad}"))
    inter = BASE.format(extra="mask_seeds = [1]", missing="").replace('kind = "intra"\nrates = [0.0, 0.5]', 'kind = "inter"')
    with pytest.raises(MsabenchError, match="kind 'inter' draws no masks"):
        protocols.load(write(tmp_path, text=inter))


def test_mosi_utt_protocols():
    inter, intra = protocols.load("mosi-utt-inter"), protocols.load("mosi-utt-intra")
    assert (inter.dataset, inter.variant, inter.kind, inter.mask_convention) == ("mosi-utt", "features", "inter", "hash")
    assert [c.available for c in inter.conditions] == ["T", "A", "V", "TA", "TV", "AV", "TAV"]
    assert inter.seeds == (1111, 1112, 1113) and inter.primary_metric == "Non0_acc_2"
    assert (intra.dataset, intra.variant, intra.kind, intra.mask_convention) == ("mosi-utt", "tokens", "intra", "hash")
    assert [c.rates for c in intra.conditions] == [(r / 10, r / 10, r / 10) for r in range(10)]
    assert intra.aggregation == ("mean", "area") and intra.metric_kind == "mosi"
    assert "per-sample feature drop" in intra.description


def test_inter_has_the_seven_sets():
    p = protocols.load("mosi-inter")
    assert [c.available for c in p.conditions] == ["T", "A", "V", "TA", "TV", "AV", "TAV"]


def test_fingerprint_ignores_formatting_and_description(tmp_path):
    a = protocols.load(write(tmp_path))
    text = BASE.format(extra='description = "x"\n# comment', missing="").replace("[0.0, 0.5]", "[0, 0.50]")
    b = protocols.load(write_file(tmp_path / "q.toml", text))
    assert a.fingerprint == b.fingerprint
    c = protocols.load(write_file(tmp_path / "r.toml", BASE.format(extra="", missing="").replace("0.5]", "0.6]")))
    assert c.fingerprint != a.fingerprint


def test_per_modality_conditions(tmp_path):
    text = BASE.format(extra="", missing="").replace("rates = [0.0, 0.5]",
                                                     "conditions = [{T = 0.3}, {A = 0.5, V = 0.2}]")
    p = protocols.load(write(tmp_path, text=text))
    assert [c.rates for c in p.conditions] == [(0.3, 0.0, 0.0), (0.0, 0.5, 0.2)]
    assert [c.name for c in p.conditions] == ["T=0.3,A=0,V=0", "T=0,A=0.5,V=0.2"]


def test_intra_on_some_modalities(tmp_path):
    p = protocols.load(write(tmp_path, missing='modalities = ["A"]'))
    assert p.modalities == "A"
    assert p.conditions[1].rates == (0.0, 0.5, 0.0)


@pytest.mark.parametrize("extra,missing,key,needle", [
    ("colour = 1", "", "colour", "unknown key"),
    ("", "foo = 2", "missing.foo", "unknown key"),
    ("", "", "missing.rates", "[0, 1]"),  # replaced below with a bad rate
    ('mask_convention = "lnln"', "", "mask_convention", "allowed: hash, mmsa"),
    ('split = "train"', "", "split", "test"),
    ('variant = "unaligned_39"', "", "variant", "aligned_50"),
    ("reveal_mask = 1", "", "reveal_mask", "bool"),
    ('aggregation = []', "", "aggregation", "at least one"),
    ('fill = "mean"', "", "fill", "unk-zero"),
    ("", 'sets = ["T"]', "missing.sets", "not allowed for kind 'intra'"),
])
def test_bad_protocols_name_file_and_key(tmp_path, extra, missing, key, needle):
    text = BASE.format(extra=extra, missing=missing)
    if key == "missing.rates":
        text = text.replace("[0.0, 0.5]", "[0.0, 1.5]")
    path = write(tmp_path, text=text)
    with pytest.raises(MsabenchError) as e:
        protocols.load(path)
    msg = str(e.value)
    assert str(path) in msg and f"'{key}'" in msg and needle in msg
    assert "\n" not in msg


@pytest.mark.parametrize("old,new,key", [
    ("seeds = [1, 2]", "seeds = []", "seeds"),
    ("seeds = [1, 2]", "seeds = [1, 1]", "seeds"),
    ('dataset = "synth-mosi"', 'dataset = "iemocap"', "dataset"),
    ("rates = [0.0, 0.5]", "rates = []", "missing.rates"),
    ("rates = [0.0, 0.5]", "rates = [-0.1]", "missing.rates"),
    ('kind = "intra"', 'kind = "outer"', "missing.kind"),
    ('primary_metric = "Non0_acc_2"', 'primary_metric = "Mult_acc_2"', "primary_metric"),
    ("version = 1", "version = 0", "version"),
])
def test_bad_values(tmp_path, old, new, key):
    path = write(tmp_path, text=BASE.format(extra="", missing="").replace(old, new))
    with pytest.raises(MsabenchError, match=f"'{key}'"):
        protocols.load(path)


def test_inter_rejects_area_and_empty_sets(tmp_path):
    text = BASE.format(extra='aggregation = ["area"]', missing="").replace(
        'kind = "intra"\nrates = [0.0, 0.5]', 'kind = "inter"')
    with pytest.raises(MsabenchError, match="'aggregation'"):
        protocols.load(write(tmp_path, text=text))
    text = BASE.format(extra="", missing="").replace('kind = "intra"\nrates = [0.0, 0.5]', 'kind = "inter"\nsets = []')
    with pytest.raises(MsabenchError, match="'missing.sets'"):
        protocols.load(write(tmp_path, text=text))


def test_random_inter_needs_p_below_one(tmp_path):
    text = BASE.format(extra="", missing="").replace('kind = "intra"', 'kind = "random-inter"').replace("0.5]", "1.0]")
    with pytest.raises(MsabenchError, match="< 1"):
        protocols.load(write(tmp_path, text=text))


def test_unknown_protocol_and_bad_toml(tmp_path):
    with pytest.raises(MsabenchError, match="nor a shipped protocol \\(mosei-inter"):
        protocols.load("mosi-nope")
    bad = write_file(tmp_path / "bad.toml", "name = \n")
    with pytest.raises(MsabenchError, match="not valid TOML"):
        protocols.load(bad)
