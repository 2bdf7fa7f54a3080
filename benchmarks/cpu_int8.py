"""Why int8 does not pay for the bundled model on onnxruntime's CPU provider (issue 28).

Two measurements, printed as JSON:
1. `kernels`: one convolution layer at the widths the model uses, 5 frames of 256 x 256: fp32
   Conv2d, int8 QLinearConv 2D and fp32 Conv3d (3x3x3, three times the FLOPs), in GFLOP/s.
2. `static`: the bundled export's 1-frame graph pair (its convolutions already 2D, see
   `dvface_plugin/runtime/onnx_conv2d.py`) quantised statically (QDQ, Conv and MatMul, per-channel
   weights), calibrated on degraded face crops from `../shared/data/train/images/ffhq` (never
   benchmark/), timed against the fp32 pair on another crop, with the output difference; where
   OpenVINO is installed, also the fp32 and int8 pairs compiled by OpenVINO in f32 and bf16.
`dvface bench model --backend ort|openvino --model M --compare-int8` times the model's int8 export
(`dvface export onnx --int8`) on full windows.

    python benchmarks/cpu_int8.py [--threads 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "models" / "dvface-tiny" / "onnx"


def session(model: onnx.ModelProto | Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def seconds(run, repeat: int = 5) -> float:
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def conv_model(x_shape, w: np.ndarray, x_type=TensorProto.FLOAT, quantized: bool = False) -> onnx.ModelProto:
    pads = [1] * (2 * (w.ndim - 2))
    if not quantized:
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=pads)]
        inits = [numpy_helper.from_array(w, "w")]
    else:
        cout = w.shape[0]
        inits = [numpy_helper.from_array(w, "w"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
                 numpy_helper.from_array(np.array(128, np.uint8), "xz"),
                 numpy_helper.from_array(np.full(cout, 0.01, np.float32), "ws"),
                 numpy_helper.from_array(np.zeros(cout, np.int8), "wz"),
                 numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
                 numpy_helper.from_array(np.array(128, np.uint8), "yz")]
        nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=pads)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", x_type, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def kernels(threads: int, frames: int = 5, size: int = 256) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for channels in (16, 32, 64):
        x = rng.standard_normal((frames, channels, size, size), dtype=np.float32)
        w2 = rng.standard_normal((channels, channels, 3, 3), dtype=np.float32)
        flops = 2 * channels * channels * 9 * frames * size * size
        fp32 = seconds(lambda s=session(conv_model(x.shape, w2), threads): s.run(None, {"x": x}))
        xq = rng.integers(0, 256, x.shape, dtype=np.uint8)
        wq = rng.integers(-127, 128, w2.shape, dtype=np.int8)
        int8 = seconds(lambda s=session(conv_model(x.shape, wq, TensorProto.UINT8, True), threads):
                       s.run(None, {"x": xq}))
        x3 = np.ascontiguousarray(x.transpose(1, 0, 2, 3)[None])
        w3 = rng.standard_normal((channels, channels, 3, 3, 3), dtype=np.float32)
        fp32_3d = seconds(lambda s=session(conv_model(x3.shape, w3), threads): s.run(None, {"x": x3}))
        rows.append({"channels": channels, "conv2d_fp32_gflops": flops / fp32 / 1e9,
                     "conv2d_int8_gops": flops / int8 / 1e9, "conv2d_int8_speedup": fp32 / int8,
                     "conv3d_fp32_gflops": 3 * flops / fp32_3d / 1e9})
    return rows


def face_crops(data: Path, count: int) -> list[np.ndarray]:
    """Degraded 512 px crops as the model's input, (1, 3, 1, 512, 512) in [-1, 1]."""
    import cv2

    from dvface_plugin.degrade import degrade_clip

    files = sorted((data / "train" / "images" / "ffhq").glob("*.png"))[:count]
    if len(files) < count:
        raise SystemExit(f"cpu_int8: needs {count} images in {data / 'train/images/ffhq'}")
    crops = []
    for i, path in enumerate(files):
        rgb = cv2.resize(cv2.imread(str(path))[..., ::-1], (512, 512), interpolation=cv2.INTER_AREA)
        low = degrade_clip(rgb[None], "medium", seed=i)[0].astype(np.float32) / 127.5 - 1.0
        crops.append(np.ascontiguousarray(low.transpose(2, 0, 1)[None, :, None]))
    return crops


def static(threads: int, data: Path) -> dict:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    crops = face_crops(data, 6)
    calibration, held_out = crops[:5], crops[5]
    graphs = {g: EXPORT / f"{g}_t1.onnx" for g in ("encode_priors", "restore")}
    fp32 = {g: session(p, threads) for g, p in graphs.items()}

    def restore_feed(encode: ort.InferenceSession, x: np.ndarray) -> dict:
        z, f_s, f_t, detail = encode.run(None, {"pixels": x})
        return {"z": z, "f_s": f_s, "f_t": f_t, "prior_scale": np.array(1.0, np.float32), "detail": detail}

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict]) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    feeds = {"encode_priors": [{"pixels": x} for x in calibration],
             "restore": [restore_feed(fp32["encode_priors"], x) for x in calibration]}
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice goes to the root logger
    with tempfile.TemporaryDirectory() as tmp:
        int8, int8_paths = {}, {}
        for g, path in graphs.items():
            staged, out = Path(tmp) / f"{g}.onnx", Path(tmp) / f"{g}_int8.onnx"
            onnx.save(onnx.load(str(path)), str(staged), save_as_external_data=True, location=f"{g}.data")
            quantize_static(str(staged), str(out), Reader(feeds[g]), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv", "MatMul"], per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, use_external_data_format=True)
            int8[g], int8_paths[g] = session(out, threads), out

        def run(pair: dict) -> np.ndarray:
            return pair["restore"].run(None, restore_feed(pair["encode_priors"], held_out))[0]

        t_fp32, reference = seconds(lambda: run(fp32), 3), run(fp32)
        result = {"fp32_crops_per_s": 1 / t_fp32}
        variants = {"int8": int8}
        if importlib.util.find_spec("openvino") is not None:  # the same graphs on OpenVINO
            from dvface_plugin.runtime.openvino_model import OpenVinoSession

            variants.update({f"openvino_{name}_{precision}": {g: OpenVinoSession.compile(path[g], precision, threads)
                                                              for g in graphs}
                             for name, path in (("fp32", graphs), ("int8", int8_paths))
                             for precision in ("fp32", "bf16")})
        for key, pair in variants.items():
            t = seconds(lambda: run(pair), 3)
            levels = np.abs(run(pair) - reference) * 127.5
            result.update({f"{key}_crops_per_s": 1 / t, f"{key}_speedup": t_fp32 / t,
                           f"{key}_mean_diff_levels": float(levels.mean()), f"{key}_max_diff_levels": float(levels.max())})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    print(json.dumps({"kernels": kernels(args.threads), "static": static(args.threads, args.data)}, indent=1))


if __name__ == "__main__":
    main()
