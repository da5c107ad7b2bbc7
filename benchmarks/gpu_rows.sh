#!/usr/bin/env bash
# The leaderboard rows of MMSA's slowest models (BERT-reading, and MulT and MCTN on synth-features) on one
# GPU machine: minutes there, 35-120 minutes per seed on one CPU core for the BERT-reading ones. Each
# (model, seed) is one `msabench run` process (both protocols of a pair from one checkpoint), all of them
# sharing the GPU; the first model's seed 1111 is trained a second time into another folder, so its
# predictions can be compared bit for bit.
#
# Usage: bash benchmarks/gpu_rows.sh OUT [MOSI_UTT]
#   OUT/runs    the result units (copy them into leaderboard/runs, then `make leaderboard`)
#   OUT/again   the repeated seed;  OUT/logs  one log per process
#   MOSI_UTT    ../shared/data/mosi-utterance.npz: adds Self-MM and MMIM on the real transcripts' tokens
# FEATURE_MODELS (default mult mctn: 8-16 and 41-48 minutes of training a seed on one CPU core) run on
# synth-features-intra/-inter.
# MSABENCH (default `python3 -m msabench`), MODELS, TOKEN_MODELS and FEATURE_MODELS may be set to run other
# models; LIMIT=S stops every run after S seconds (what finished is kept: units are written one by one).
set -u
out=${1:?usage: gpu_rows.sh OUT [MOSI_UTT]}
utt=${2:-}
msabench="timeout ${LIMIT:-0} ${MSABENCH:-python3 -m msabench}"
models=${MODELS-self_mm mmim bert_mag misa tfr_net}  # MMSA model names, options after a comma
token_models=${TOKEN_MODELS-self_mm mmim}
feature_models=${FEATURE_MODELS-mult mctn}
seeds=${SEEDS:-1111 1112 1113}  # the protocols' seeds
mkdir -p "$out/logs"

for m in $models; do
  for seed in $seeds; do
    $msabench run --protocol synth-intra synth-inter --model "mmsa:$m" --seeds "$seed" --cpus-per-job 1 \
      --out "$out/runs" > "$out/logs/synth-${m%%,*}-$seed.log" 2>&1 &
  done
done
for m in $feature_models; do
  for seed in $seeds; do
    $msabench run --protocol synth-features-intra synth-features-inter --model "mmsa:$m" --seeds "$seed" \
      --cpus-per-job 1 --out "$out/runs" > "$out/logs/features-${m%%,*}-$seed.log" 2>&1 &
  done
done
if [ -n "$utt" ]; then
  for m in $token_models; do
    for seed in $seeds; do
      $msabench run --protocol mosi-utt-inter-tokens --model "mmsa:$m" --seeds "$seed" --data "$utt" \
        --cpus-per-job 1 --out "$out/runs" > "$out/logs/tokens-${m%%,*}-$seed.log" 2>&1 &
    done
  done
fi
first=${models%% *}
$msabench run --protocol synth-inter --model "mmsa:$first" --seeds 1111 --cpus-per-job 1 --out "$out/again" \
  > "$out/logs/again-${first%%,*}.log" 2>&1 &
wait

python3 - "$out" <<'PY'
import sys
from pathlib import Path

import pyarrow.parquet as pq

out = Path(sys.argv[1])
for b in sorted((out / "again").rglob("predictions.parquet")):
    a = out / "runs" / b.relative_to(out / "again")
    if not a.is_file():
        print(f"{a.parent}: not finished, nothing to compare")
        continue
    x, y = pq.read_table(a)["prediction"].to_numpy(), pq.read_table(b)["prediction"].to_numpy()
    print(f"{b.parent.relative_to(out / 'again')} trained twice on this device: predictions bit-identical: "
          f"{bool((x == y).all())} (largest difference {abs(x - y).max():.3e}, {len(x)} predictions)")
PY
for f in "$out"/logs/*.log; do
  echo "== $f"; tail -n 4 "$f"
done
