"""GPU benchmark of the bundled models at real scale (one script, under 8 minutes on one H100).

Prints each figure with the device it was measured on:
(a) training epoch time of prlf, derl and firf with a BERT-base-sized text encoder (random
    weights, saved to a local folder: nothing is downloaded) on synth-mosi unaligned_50
    (1,284 training samples; 50 tokens, audio 375x5, vision 500x20): the GPU on the whole
    epoch, the CPU (all cores) on the first `--cpu-samples` samples, scaled to 1,284;
(b) the LNLN grid shape: prlf, derl, firf x 3 seeds x 10 rates (synth-unaligned-intra),
    train + evaluate, through the Ray executor with --gpus-per-job 0.25 (4 jobs per GPU);
    wall time, and per job the GPU memory peak (manifest `compute.gpu_peak_mb`);
(c) harness overhead of a bundled model on the GPU (benchmarks/harness.py's measure);
(d) the GPU determinism contract: the same seed trains the same weights twice; whether
    predictions depend on the batch size, fp32 and bf16, with the largest difference;
(e) LNLN's reference methods (lnln, almt, cenet, tetfn) and LNLN's test-split selection
    (prlf:selection=test-per-metric,selection_metric=Non0_acc_2) trained and evaluated through the harness on the GPU
    (synth-intra, seed 1111, 3 epochs: that each path runs there).
Targets: (a) <= 5 s per epoch on the GPU, (b) <= 10 min, (c) <= 1.05.

Usage: python3 benchmarks/gpu.py            (on the GPU machine; see ../shared/device/README.md)
       python3 benchmarks/gpu.py --quick    (a CPU dry run at toy sizes: checks the script only)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster on a machine with no network

import torch  # noqa: E402

from msabench import devices, executors, masking, protocols, submission  # noqa: E402
from msabench.data import synth  # noqa: E402

PAPER_MODELS = ("prlf", "derl", "firf")


def save_bert(folder: Path, quick: bool) -> Path:
    """Random BERT weights of bert-base's shape (768-d, 12 layers), or a toy one for --quick."""
    import transformers

    size = (dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if quick else
            dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072))
    config = transformers.BertConfig(vocab_size=30522, max_position_embeddings=512, **size)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def dataset(quick: bool):
    if quick:
        return synth.make_dataset(variant="unaligned_50", sizes=(96, 32, 48), audio_len=60, vision_len=80,
                                  text_feature_dim=32)
    return synth.make_dataset(variant="unaligned_50")


def fitted(spec: str, data, seed: int = 1111):
    model = submission.load(spec).build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], seed)
    return model


def epoch_times(data, bert: Path, gpu: bool, cpu_samples: int) -> None:
    n = len(data["train"])
    for name in PAPER_MODELS:
        enc = f"text_encoder=bert,bert_path={bert}"
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MSABENCH_CACHE"] = cache
            if gpu:
                m = fitted(f"{name}:{enc},epochs=2,patience=2,device=cuda", data)
                h = m.history
                print(f"(a) {name} + BERT-base, {devices.device_name(m.compute.device)} {m.compute.precision}: "
                      f"epoch of {n} samples {h[-1]['train_s']:.2f} s (first epoch {h[0]['train_s']:.2f} s; "
                      f"validation {h[-1]['valid_s']:.2f} s; target <= 5 s)", flush=True)
            small = data["train"].select(slice(0, cpu_samples))
            m = submission.load(f"{name}:{enc},epochs=1,device=cpu,precision=fp32").build(data.info)
            m.log = lambda msg: None
            m.fit(small, data["valid"].select(slice(0, 16)), 1111)
            per = m.history[0]["train_s"] / len(small)
            print(f"(a) {name} + BERT-base, CPU {devices.device_name('cpu')} x {m.compute.threads} threads fp32: "
                  f"{m.history[0]['train_s']:.1f} s for {len(small)} samples = {per * n:.0f} s per epoch of {n} "
                  "(scaled)", flush=True)


def grid(data, gpu: bool, cpus_per_job: float) -> None:
    p = protocols.load("synth-unaligned-intra")
    key = (p.dataset, p.variant)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MSABENCH_CACHE"] = str(Path(tmp) / "cache")
        models = [f"{m}:epochs=3" for m in PAPER_MODELS] if not gpu else list(PAPER_MODELS)
        ex = executors.RayExecutor(cpus_per_job=cpus_per_job, gpus_per_job=0.25 if gpu else 0.0)
        t0 = time.perf_counter()
        report = executors.run_grid([p], models, {key: data}, Path(tmp) / "out", ex, progress=False)
        wall = time.perf_counter() - t0
        if report.failures:
            for _, err in report.failures:
                print(f"(b) FAILED: {err}")
            return
        units = report.units
        c = units[0].manifest["compute"]
        print(f"(b) LNLN grid shape ({len(PAPER_MODELS)} models x {len(p.seeds)} seeds x {len(p.conditions)} rates, "
              f"{len(data['test'])} test samples) via Ray, {'0.25 GPU' if gpu else 'CPU'} + {cpus_per_job:g} CPUs "
              f"per job on {c['name']} ({c['precision']}): {wall:.1f} s wall incl. Ray start-up "
              f"(target <= 600 s)", flush=True)
        for u in sorted(units, key=lambda u: (u.model, u.seed)):
            m = u.manifest
            print(f"    {u.model:<5} seed {u.seed}: fit {m['fit_seconds']:.1f} s, predict {m['predict_seconds']:.1f} s, "
                  f"GPU peak {m['compute']['gpu_peak_mb']} MB, Non0_acc_2 mean "
                  f"{u.metrics['aggregate']['mean']['Non0_acc_2']:.3f}")


def overhead(data, gpu: bool) -> None:
    import harness

    spec = "prlf:device=cuda" if gpu else "prlf:epochs=2"
    o = harness.overhead(spec, 3, dataset=data, protocol_name="synth-unaligned-intra")
    print(f"(c) harness overhead, {spec} on {devices.device_name('cuda:0' if gpu else 'cpu')}: msabench run "
          f"{o['harness_s']:.3f} s / bare predict {o['bare_s']:.3f} s = {o['ratio']:.3f} (target <= 1.05)", flush=True)


def determinism(data, gpu: bool) -> None:
    device = "cuda" if gpu else "cpu"
    test = data["test"].select(slice(0, 64))
    obs = masking.observed(protocols.load("synth-unaligned-intra"), test, 1111)["r=0.5"]
    for precision in ("fp32", "bf16"):
        runs = []
        for _ in range(2):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["MSABENCH_CACHE"] = cache
                runs.append(fitted(f"prlf:epochs=2,device={device},precision={precision}", data))
        a, b = (r.net.state_dict() for r in runs)
        same = all(torch.equal(a[k], b[k]) for k in a)
        preds = {}
        for bs in (1, 7, 64):
            out = []
            for start in range(0, len(test), bs):
                batch, mask = masking.corrupt(test, obs, slice(start, start + bs), reveal=False)
                out.append(runs[0].predict(batch, mask))
            preds[bs] = np.concatenate(out)
        diff = max(float(np.abs(preds[1] - p).max()) for p in preds.values())
        again = np.array_equal(preds[64], runs[1].predict(*masking.corrupt(test, obs, slice(0, 64), reveal=False)))
        print(f"(d) {devices.device_name(runs[0].compute.device)} {precision}: same seed -> same weights: {same}; "
              f"same predictions: {again}; batch sizes 1/7/64 bit-identical: {diff == 0.0} "
              f"(largest difference {diff:.2e})", flush=True)


def reference_methods(gpu: bool, quick: bool) -> None:
    """LNLN's reference methods and LNLN's test-split selection, trained and evaluated through the harness on
    the job's device (synth-intra, seed 1111, a few epochs: a check that each path runs there, not a row)."""
    from msabench.data import load as load_data

    p = protocols.load("synth-intra")
    data = (synth.make_dataset(sizes=(96, 32, 48), text_feature_dim=32) if quick
            else load_data(p.dataset, p.variant))
    device = "cuda" if gpu else "cpu"
    for spec in ("lnln", "almt", "cenet", "tetfn", "prlf:selection=test-per-metric,selection_metric=Non0_acc_2"):
        full = f"{spec}{',' if ':' in spec else ':'}epochs={1 if quick else 3},device={device}"
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MSABENCH_CACHE"] = str(Path(tmp) / "cache")
            t0 = time.perf_counter()
            report = executors.run(p, full, seeds=[1111], out=Path(tmp) / "out", dataset=data)
            u = report.units[0]
            c = u.manifest["compute"]
            print(f"(e) {full}: {c.get('name')} {c.get('precision')}, fit {u.manifest['fit_seconds']:.1f} s, "
                  f"predict {u.manifest['predict_seconds']:.1f} s over {len(p.conditions)} rates "
                  f"({time.perf_counter() - t0:.1f} s in all), selects_on_test {u.manifest['selects_on_test']}, "
                  f"Non0_acc_2 mean {u.metrics['aggregate']['mean']['Non0_acc_2']:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU dry run at toy sizes (checks the script)")
    ap.add_argument("--cpu-samples", type=int, default=64, help="training samples timed on the CPU in (a)")
    ap.add_argument("--cpus-per-job", type=float, default=4, help="CPUs per Ray job in (b)")
    ap.add_argument("--parts", default="abcde", help="which parts to run (default abcde)")
    args = ap.parse_args()
    gpu = devices.visible_gpus() > 0 and not args.quick
    if not gpu and not args.quick:
        sys.exit("gpu.py: no GPU visible (torch.cuda.is_available() is False); use --quick for a CPU dry run")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if gpu else 'no GPU'}, {devices.available_cpus()} CPUs", flush=True)
    t0 = time.perf_counter()
    data = dataset(args.quick)
    print(f"synth-mosi unaligned_50 generated in {time.perf_counter() - t0:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in args.parts:
            epoch_times(data, save_bert(Path(tmp) / "bert", args.quick), gpu, 8 if args.quick else args.cpu_samples)
    if "b" in args.parts:
        grid(data, gpu, 1 if args.quick else args.cpus_per_job)
    if "c" in args.parts:
        overhead(data, gpu)
    if "d" in args.parts:
        determinism(data, gpu)
    if "e" in args.parts:
        reference_methods(gpu, args.quick)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
