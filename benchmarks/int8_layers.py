"""Which layers of the restore graph to quantise, and which to keep in fp32 (issue 28).

The bundled export's 17-frame restore graph (DiT, VAE decoder, refiner) is quantised as `dvface
export onnx --int8` does (`dvface_plugin/runtime/onnx_int8.py`, ranges measured once on four
degraded windows of prepared training clips) in four variants: every convolution int8; the
convolutions at the latent kept fp32 (`onnx_int8.kept_fp32`, what the export does); those and
the last 16 convolutions in graph order (the decoder's last stage and the refiner); and the
export's choice plus every MatMul int8. Each runs on OpenVINO on a held-out window, fed by the
fp32 encode graph, against the fp32 restore graph: the output's mean difference, its frame-to-
frame change (the grain the warping error sees), both in 8-bit levels, and the graph's time.
Prints JSON.

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/int8_layers.py [--prepared runs/data/tiny512]

`--prepared` is a folder made by `dvface prepare` from ../shared/data/train (never benchmark/).
About 3 minutes for the ranges, then half a minute a variant, on two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

from cpu_int8 import seconds  # benchmarks/, this script's folder
from dvface_plugin.commands.export import calibration_clips, calibration_window, spread_clips
from dvface_plugin.runtime.onnx_int8 import QUANTIZED_OPS, activation_ranges, kept_fp32
from dvface_plugin.runtime.openvino_model import OpenVinoSession

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "models" / "dvface-tiny" / "onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=REPO / "runs" / "data" / "tiny512")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice goes to the root logger
    clips = calibration_clips(args.prepared)
    windows = [calibration_window(path, seed, 17, 512) for seed, path in enumerate(spread_clips(clips, 4))]
    held_out = calibration_window(clips[len(clips) // 2 + 1], 99, 17, 512)
    with tempfile.TemporaryDirectory(prefix="dvface-int8-layers-") as tmp:
        work = Path(tmp)
        shutil.copy(EXPORT / "weights.onnx.data", work)
        graph = onnx.load(str(EXPORT / "restore.onnx"), load_external_data=False)
        for i, node in enumerate(graph.graph.node):  # the 2D rewrite leaves nodes unnamed: name them to exclude them
            node.name = node.name or f"node{i}"
        onnx.save(graph, str(work / "restore.onnx"))
        encode = ort.InferenceSession(str(EXPORT / "encode_priors.onnx"), providers=["CPUExecutionProvider"])

        def feed(x: np.ndarray) -> dict:
            z, f_s, f_t, detail = encode.run(None, {"pixels": x})
            return {"z": z, "f_s": f_s, "f_t": f_t, "prior_scale": np.array(1.0, np.float32), "detail": detail}

        start = time.perf_counter()
        ranges = activation_ranges(work, "restore.onnx", [feed(x) for x in windows], ops=("Conv", "MatMul"))
        result = {"ranges_s": time.perf_counter() - start}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
            name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()
        }), work / "ranges.json")
        constants = {t.name for t in graph.graph.initializer}
        convs = [n for n in graph.graph.node if n.op_type == "Conv"]
        latent = [n.name for n in convs if kept_fp32(n, constants)]
        variants = {"every_conv": (QUANTIZED_OPS, []), "latent_fp32": (QUANTIZED_OPS, latent),
                    "latent_and_last_16_fp32": (QUANTIZED_OPS, latent + [n.name for n in convs[-16:]]),
                    "latent_fp32_and_matmul_int8": (("Conv", "MatMul"), latent)}
        test = feed(held_out)
        fp32 = OpenVinoSession.compile(work / "restore.onnx", "fp32", 2)
        reference = fp32.run(None, test)[0]
        result.update(fp32_restore_s=seconds(lambda: fp32.run(None, test), 2), convs=len(convs), latent_convs=len(latent))
        for key, (ops, exclude) in variants.items():
            staged, out = work / f"staged-{key}" / "restore.onnx", work / key / "restore.onnx"
            staged.parent.mkdir()
            out.parent.mkdir()
            onnx.save(onnx.load(str(work / "restore.onnx")), str(staged), save_as_external_data=True, location="r.data")
            quantize_static(str(staged), str(out), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(ops),
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, use_external_data_format=True,
                            calibration_cache_path=str(work / "ranges.json"), nodes_to_exclude=exclude)
            int8 = OpenVinoSession.compile(out, "int8", 2)
            error = (int8.run(None, test)[0] - reference)[0] * 127.5  # (3, T, H, W) in 8-bit levels
            took = seconds(lambda: int8.run(None, test), 2)
            result[key] = {"mean_diff_levels": float(np.abs(error).mean()),
                           "frame_to_frame_diff_levels": float(np.abs(np.diff(error, axis=1)).mean()),
                           "restore_s": took, "speedup": result["fp32_restore_s"] / took}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
