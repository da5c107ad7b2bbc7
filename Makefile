# Two entry points, each doing all the set-up from a fresh clone:
#   make run    venv + install + msabench run on the embedded synthetic data
#   make test   venv + install + the test suite (what CI runs)
# and, for CI and writers: make docs (the documentation site from docs/, mkdocs build --strict, into site/)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.msabench-installed

.PHONY: run test docs bench calibration leaderboard recipes

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch pinned first: 2.13.0 is the CPU build this project is developed and tested with
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/msabench run --protocol synth-intra --model submissions/example.py

# The suite's jobs train on one CPU thread each: two pytest workers keep both cores of the CI machine busy.
# A test module stays on one worker (--dist loadscope), so its module fixtures (trained models) are built once;
# modules go out in collection order (--no-loadscope-reorder: xdist would sort them by test count), which
# tests/conftest.py starts with the longest ones
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# The site from docs/ (mkdocs.yml): --strict fails on a broken link or anchor, or a page left out of nav.
# tests/test_docs.py runs the pages' shell and Python blocks.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

bench: $(STAMP)
	$(PY) benchmarks/harness.py
	$(PY) benchmarks/stats_speed.py
	$(PY) benchmarks/baselines.py
	$(PY) benchmarks/ray_grid.py
	$(PY) benchmarks/ray_memory.py
	$(PY) benchmarks/text_encoders.py

# False-positive rate and power of `msabench compare`: the simulation through stats (about 15 minutes
# on 2 cores), then the harness-level check (about 5 minutes)
calibration: $(STAMP)
	$(PY) benchmarks/calibration.py --reps 1000 --workers 2
	$(PY) benchmarks/calibration.py --harness --pairs 100

# The four reference methods with their authors' recipe beside msabench's on mosi-utt-intra (3 seeds, one
# CPU thread a job; LNLN also with its authors' checkpoint choice on test, kept off the board in
# results/selection-on-test), the table of docs/models.md: about 2.5 hours on 2 CPU cores. The
# authors'-recipe rows land in leaderboard/runs, where `make leaderboard` ranks them.
recipes: $(STAMP)
	$(PY) benchmarks/recipes.py --methods lnln almt cenet tetfn --lnln-select Non0_acc_2 MAE $(if $(MOSI_UTT),--data $(MOSI_UTT))

# The leaderboard in leaderboard/: every bundled model on synth-intra and synth-inter (3 seeds; a
# model is trained once per seed, the checkpoint serves both protocols), plus an ablation of each
# paper component on synth-intra (seed 1111), the simple bundled models and MMSA's quick feature models
# on synth-features-intra and synth-features-inter (3 seeds), and the rows of MMSA's BERT-reading models found in
# leaderboard/runs (see MMSA_BERT_MODELS). `make -j2 leaderboard` uses both cores: two runs at once,
# each on one CPU thread (--cpus-per-job 1: the thread count is part of what a model's weights are;
# one thread on the same kind of CPU reproduces the committed runs bit for bit).
# With MOSI_UTT=path/to/mosi-utterance.npz it adds the real-data section (CMU-MOSI utterance-level
# features, bc-LSTM split, 3 seeds): every bundled model with text embeddings learned from scratch on
# mosi-utt-inter (bc-LSTM text vector) and mosi-utt-intra-words (word vocabulary), and every model
# but the mean with the packaged MiniLM, frozen, on mosi-utt-inter-tokens and mosi-utt-intra
# (WordPiece tokens), and MMSA's own feature models (mmsa:MODEL, MMSA's configs and trainers) on
# mosi-utt-inter (and ranks the rows of MMSA's BERT-reading models on mosi-utt-inter-tokens found in
# leaderboard/runs). The MiniLM part takes about an hour on 2 CPU cores.
# The leaderboard's per-sample results live in the repository (leaderboard/runs/), so a later machine adds
# rows to the board instead of re-running every model: a run skips the units already there. Runs on
# user-supplied data (MOSI_UTT) are committed without their labels (.gitignore: they are the data's), which
# the leaderboard reads back from MOSI_UTT (--data).
LB_RESULTS := leaderboard/runs
MSABENCH := $(VENV)/bin/msabench
MOSI_UTT ?=
REAL_MODELS := mean text-only late-fusion prlf derl firf lnln almt cenet tetfn
# LNLN's reference methods re-implemented here: their main rows (3 seeds) and ablations (seed 1111)
REFERENCE_MODELS := lnln almt cenet tetfn
MINILM_MODELS := text-only late-fusion prlf derl firf lnln almt cenet tetfn
MMSA_MODELS := lf_dnn tfn lmf mfn ef_lstm graph_mfn mfm  # mult, mctn: they need sequences, not one vector
# MMSA's models that read token ids through BERT (fine-tuning the packaged MiniLM, MMSA's early
# stopping): on synth-intra and synth-inter, 34-76 minutes per seed on one CPU core (README)
MMSA_BERT_MODELS := self_mm bert_mag mmim tfr_net misa
# those of them that read the real transcripts' tokens (bert_mag needs aligned data; tfr_net and misa
# sequences of audio and vision)
MMSA_TOKEN_MODELS := self_mm mmim
# On synth-features-intra/-inter (synth's aligned token sequences with MMSA's 768-d text features): the
# bundled reference rows and MMSA's feature models (one CPU thread, all three seeds: lmf 3 min, ef_lstm 5,
# mfm 15, mfn 18, graph_mfn 24; tfn 5-9 per seed; mult 8-16 minutes of training a seed, holding about
# 10 GB while it trains, since MMSA's trainers keep each batch's autograd graph until the epoch ends
# (benchmarks/mmsa_graph_memory.py); mctn 41-48 minutes a seed, 97-107 epochs before MMSA's early stop).
FEATURE_REFERENCE_MODELS := mean text-only late-fusion
MMSA_SEQUENCE_MODELS := lf_dnn tfn lmf ef_lstm mfm mfn graph_mfn mult mctn
# On synth-sims-intra/-inter (the same data labelled as CH-SIMS, with unimodal T/A/V labels): MMSA's
# multi-task models, which train on those labels, beside their single-task versions and the references
MMSA_SIMS_MODELS := mlf_dnn lf_dnn mlmf lmf mtfn tfn

lb-%: $(STAMP)
	$(MSABENCH) run --protocol synth-intra synth-inter --model $* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

ablate-%: lb-%
	$(MSABENCH) run --protocol synth-intra --model $* --ablate --seeds 1111 --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

real-%: $(STAMP)
	$(MSABENCH) run --protocol mosi-utt-inter mosi-utt-intra-words --model $* --data $(MOSI_UTT) --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

# the constant floor on the WordPiece-token protocols (it reads no text, so no MiniLM in its name)
tokens-mean: $(STAMP)
	$(MSABENCH) run --protocol mosi-utt-inter-tokens mosi-utt-intra --model mean --data $(MOSI_UTT) --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

minilm-%: $(STAMP)
	$(MSABENCH) run --protocol mosi-utt-inter-tokens mosi-utt-intra --model $*:text_encoder=minilm --data $(MOSI_UTT) --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

feat-%: $(STAMP)
	$(MSABENCH) run --protocol synth-features-intra synth-features-inter --model $* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

mmsa-feat-%: $(STAMP)
	$(MSABENCH) run --protocol synth-features-intra synth-features-inter --model mmsa:$* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

sims-%: $(STAMP)
	$(MSABENCH) run --protocol synth-sims-intra synth-sims-inter --model $* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

mmsa-sims-%: $(STAMP)
	$(MSABENCH) run --protocol synth-sims-intra synth-sims-inter --model mmsa:$* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

mmsa-synth-%: $(STAMP)
	$(MSABENCH) run --protocol synth-intra synth-inter --model mmsa:$* --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

mmsa-tokens-%: $(STAMP)
	$(MSABENCH) run --protocol mosi-utt-inter-tokens --model mmsa:$* --data $(MOSI_UTT) --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

mmsa-%: $(STAMP)
	$(MSABENCH) run --protocol mosi-utt-inter --model mmsa:$* --data $(MOSI_UTT) --cpus-per-job 1 --out $(LB_RESULTS) > /dev/null

# MMSA's BERT-reading models are not prerequisites: hours per model on a CPU. Their rows come from
# `make mmsa-synth-NAME` / `make mmsa-tokens-NAME MOSI_UTT=...` or, in minutes, from one GPU machine
# (bash benchmarks/gpu_rows.sh OUT MOSI_UTT, then copy OUT/runs into leaderboard/runs); the board ranks
# those whose runs are in leaderboard/runs.
leaderboard: lb-mean lb-text-only lb-late-fusion ablate-prlf ablate-derl ablate-firf $(addprefix ablate-,$(REFERENCE_MODELS)) \
		$(addprefix feat-,$(FEATURE_REFERENCE_MODELS)) $(addprefix mmsa-feat-,$(MMSA_SEQUENCE_MODELS)) \
		$(addprefix sims-,$(FEATURE_REFERENCE_MODELS)) $(addprefix mmsa-sims-,$(MMSA_SIMS_MODELS)) \
		$(if $(MOSI_UTT),$(addprefix real-,$(REAL_MODELS)) tokens-mean $(addprefix minilm-,$(MINILM_MODELS)) \
		$(addprefix mmsa-,$(MMSA_MODELS)))
	$(MSABENCH) runs --pack --results $(LB_RESULTS)
	$(MSABENCH) board index --runs $(LB_RESULTS) --out leaderboard/index/runs.sha256
	$(MSABENCH) leaderboard --html --results $(LB_RESULTS) --out leaderboard $(if $(MOSI_UTT),--data $(MOSI_UTT)) \
		--command-line "make -j2 leaderboard$(if $(MOSI_UTT), MOSI_UTT=$(MOSI_UTT))"
