"""Memory an MMSA 2.2.1 trainer holds by keeping each batch's output with its autograd graph.

MMSA's trainers collect every training batch's prediction for the epoch's metrics with
`y_pred.append(outputs.cpu())`: no `.detach()`, and on a CPU `.cpu()` returns the tensor itself, so the
list holds each batch's graph until the epoch ends. `backward()` frees the tensors most nodes saved, so
for many models this costs little; this script measures what it costs per model.

What runs. For each MODEL (default mult, tfn, lf_dnn), two fresh processes each build the model with
MMSA's MOSI config (msabench's adapter: `msabench.baselines.mmsa`) on synth's `aligned_50_features` data
and train BATCHES batches (or one epoch, when shorter) with MMSA's batch size and an Adam step after each (lr 1e-3; Adam's state has
the parameters' size whatever the rate): one keeps every output as MMSA does ("kept"), one keeps
`output.detach()` ("detached"). Each prints its resident memory (/proc/self/statm) after the first batch
and after the last; the figure is the growth between the two, per batch, and the ratio kept / detached.
One CPU thread. A growth of a few MB a batch either way is the allocator's noise (two runs here: TFN
kept 7.6 and 3.5, LF_DNN detached 2.5 and -3.5); MulT's tens of MB a batch, kept only, is not.

Usage: python benchmarks/mmsa_graph_memory.py [BATCHES] [MODEL ...]   (default 40 batches; mult tfn lf_dnn)
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys


def measure(model: str, mode: str, batches: int) -> dict:
    """One training loop in this process: resident MB after batch 1 and after the last batch."""
    import torch

    from msabench import data, devices
    from msabench.baselines import mmsa

    torch.set_num_threads(1)
    ds = data.load("synth-mosi", "aligned_50_features")
    m = mmsa.build(ds.info, mmsa.parse_options({"model": model}, "mmsa"))
    mmsa.mmsa_package(f"mmsa:{model}")
    from MMSA.models import AMIO

    m.compute = devices.resolve("cpu", "fp32", 1, where=f"mmsa:{model}")
    m.args = m._args(m.compute)
    torch.manual_seed(1111)
    net = AMIO(copy.deepcopy(m.args))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    kept, first = [], None

    def resident_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    for i, batch in enumerate(m._loader(ds["train"], True, 1111)):
        if i == batches:
            break
        out = net(batch["text"], batch["audio"], batch["vision"])["M"]
        loss = torch.nn.functional.l1_loss(out, batch["labels"]["M"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        kept.append(out.cpu() if mode == "kept" else out.detach())
        if i == 0:
            first = resident_mb()
    return {"first_mb": first, "last_mb": resident_mb(), "batches": len(kept), "batch_size": int(m.args.batch_size)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    args = sys.argv[1:]
    batches = int(args.pop(0)) if args and args[0].isdigit() else 40
    models = args or ["mult", "tfn", "lf_dnn"]
    print(f"{'model':8} {'batch':>5}  {'kept: MB/batch':>14}  {'detached: MB/batch':>18}  {'ratio':>6}")
    for model in models:
        growth = {}
        for mode in ("kept", "detached"):
            out = subprocess.run([sys.executable, __file__, "--one", model, mode, str(batches)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            growth[mode] = (r["last_mb"] - r["first_mb"]) / max(1, r["batches"] - 1)
        ratio = f"{growth['kept'] / growth['detached']:.1f}" if growth["detached"] > 0.05 else "-"
        print(f"{model:8} {r['batch_size']:>5}  {growth['kept']:>14.1f}  {growth['detached']:>18.1f}  {ratio:>6}")


if __name__ == "__main__":
    main()
