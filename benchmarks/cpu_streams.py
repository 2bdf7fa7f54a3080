"""Two faces on two CPU cores: one batched call, two calls in turn, or two calls side by side?

Times the model's restore graph (the larger of its two) on onnxruntime's CPU provider for two
17-frame windows of 512 x 512 crops, three ways:

- batch: one call on a graph exported for a batch of 2 (what "batching the tracks" would do);
- in turn: two calls, one after the other, each on every core (what the engine did);
- side by side: two calls at once from two threads, each session on its share of the cores
  (the engine's two streams, `dvface_plugin.runtime.ort_restorer.plan_streams`).

    python benchmarks/cpu_streams.py [--model models/dvface-tiny] [--repeat 5]

Prints seconds per pair of windows (best of --repeat, after a warm-up) and the speed-ups over
"in turn", and checks that the side-by-side outputs equal the in-turn ones bit for bit. Needs torch
(to export the graphs) and about 4 GB of memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from dvface_plugin.runtime.onnx_export import EncodePriorsGraph, RestoreGraph, _export
from dvface_plugin.runtime.torch_restorer import load_model

INPUTS = ["z", "f_s", "f_t", "prior_scale", "detail"]


def export_restore(model, batch: int, folder: Path) -> tuple[Path, dict]:
    """The restore graph for `batch` windows, and inputs for it (the encoded latent of a grey clip)."""
    cfg = model.config
    pixels = torch.rand(batch, 3, cfg.window, cfg.crop_size, cfg.crop_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        encoded = EncodePriorsGraph(model)(pixels * 2 - 1)
    args = (*encoded[:3], torch.tensor(1.0), *encoded[3:])
    path = folder / f"restore_b{batch}.onnx"
    _export(RestoreGraph(model).eval(), args, path, INPUTS[: len(args)], ["pixels"])
    return path, {name: a.numpy() for name, a in zip(INPUTS, args)}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def best(run, repeat: int) -> tuple[float, object]:
    out = run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    model = load_model(args.model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        one_path, one = export_restore(model, 1, Path(tmp))
        two_path, two = export_restore(model, 2, Path(tmp))
        whole, half = session(one_path, cores), session(one_path, max(1, cores // 2))
        other_half = session(one_path, max(1, cores // 2))
        batched = session(two_path, cores)

        def in_turn():
            return [whole.run(None, one)[0] for _ in range(2)]

        def side_by_side():
            outs = [None, None]

            def call(i, s):
                outs[i] = s.run(None, one)[0]

            threads = [threading.Thread(target=call, args=(i, s)) for i, s in enumerate((half, other_half))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return outs

        t_turn, ref = best(in_turn, args.repeat)
        t_side, outs = best(side_by_side, args.repeat)
        t_batch, _ = best(lambda: batched.run(None, two)[0], args.repeat)
    same = all(np.array_equal(a, b) for a, b in zip(outs, ref))
    print(f"{cores} cores, two {model.config.window}-frame windows of {model.config.crop_size} px, restore graph")
    print(f"in turn (each call on {cores} threads): {t_turn:.2f} s")
    print(f"batch of 2 (one call on {cores} threads): {t_batch:.2f} s, {t_turn / t_batch:.2f}x")
    print(f"side by side (two calls on {max(1, cores // 2)} threads each): {t_side:.2f} s, {t_turn / t_side:.2f}x, "
          f"outputs {'bit-identical' if same else 'DIFFERENT'} to in turn")


if __name__ == "__main__":
    main()
