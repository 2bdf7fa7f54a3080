"""An int8 copy of a DVFace ONNX export, for CPUs without bf16 units (`dvface export onnx --int8`).

Static quantisation: convolution weights become int8 per output channel, and their
activations uint8 per tensor (but for the few convolutions at the latent, `kept_fp32`), with ranges measured once on degraded face windows (`dvface export
onnx --int8` draws them from a folder made by `dvface prepare` from training footage, never a
benchmark). The rest of each graph (norms, activations, attention, linears) stays fp32. The graphs are in
onnxruntime's QDQ form, which OpenVINO also reads.

Why it is opt-in: on CPUs without bf16 units (AVX-512 VNNI or AVX2 + AVX-VNNI, imitated) OpenVINO
ran the bundled model's window about 1.8x as fast as the fp32 export (1.6x to 2.0x run to run), but
the quantisation noise, under a level on average, changes from frame to frame and raised the
paired clips' warping error by 6 to 17 % (docs/benchmarks.md, "int8 on the CPU, opt-in"). Where the
CPU has AMX, OpenVINO's bf16 is faster still and more exact; onnxruntime gains only 1.13x from int8.

Ranges are measured by running the fp32 graph with a group of intermediate tensors added as
outputs at a time, a few GiB per pass: onnxruntime's own calibrator keeps every intermediate
tensor of a 17-frame 512 px window alive at once (more than 24 GB for the tiny model's graphs).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DVFaceError, InputError
from .onnx_format import ENCODE_GRAPH, MANIFEST_NAME, RESTORE_GRAPH, replace_folder, share_external_data, short_graphs

QUANTIZED_OPS = ("Conv",)  # int8 MatMuls (attention, the DiT's linears) only slowed the graphs down
FP32_CONVS = ("patch_embedding", "quant_conv")  # convolutions reading or writing the latent stay fp32
PASS_BYTES = 2 << 30  # intermediate tensors fetched per calibration pass


def kept_fp32(node, constants: set[str]) -> bool:
    """Whether a Conv stays fp32: the DiT's patch embedding and the VAE's quant_conv / post_quant_conv,
    named by their weights. Quantised, these two of the restore graph's 130 convolutions put 2.5 levels
    of grain on the output; kept fp32, 0.65 (benchmarks/int8_layers.py)."""
    return any(key in name for name in node.input if name in constants for key in FP32_CONVS)


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def activation_ranges(folder: Path, graph: str, feeds: list[dict], threads: int | None = None,
                      ops: tuple[str, ...] = QUANTIZED_OPS) -> dict[str, tuple]:
    """(min, max) over `feeds` of every float tensor going into or out of an `ops` node of the graph
    `folder/graph`, the tensors onnxruntime's quantiser needs ranges for."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(folder / graph), load_external_data=False))
    infos = {v.name: v for v in (*model.graph.value_info, *model.graph.output, *model.graph.input)}
    constant = {t.name for t in model.graph.initializer}
    names: dict[str, int] = {}  # tensor -> bytes, in graph order
    for node in model.graph.node:
        if node.op_type not in ops:
            continue
        for name in (*node.input, *node.output):
            info = infos.get(name)
            if info is None or name in constant or info.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                continue
            names[name] = 4 * int(np.prod([d.dim_value for d in info.type.tensor_type.shape.dim]))
    groups: list[list[str]] = [[]]
    used = 0
    for name, size in names.items():
        if groups[-1] and used + size > PASS_BYTES:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += size
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dvface-calibrate-") as tmp:
        # onnxruntime reads external data only from the graph's own folder (no links out of it)
        for data in {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}:
            shutil.copy(folder / data, Path(tmp) / data)
        outputs = {o.name for o in model.graph.output}
        for group in groups:
            probe = onnx.load(str(folder / graph), load_external_data=False)
            probe.graph.output.extend(infos[n] for n in group if n not in outputs)
            onnx.save(probe, str(Path(tmp) / graph))
            session = _session(Path(tmp) / graph, threads)
            for feed in feeds:
                for name, value in zip(group, session.run(group, feed)):
                    low[name] = min(low.get(name, np.inf), float(value.min()))
                    high[name] = max(high.get(name, -np.inf), float(value.max()))
            del session
    return {name: (low[name], high[name]) for name in names}


def _check_quantizer() -> None:
    """The measured ranges reach onnxruntime's quantiser as its calibration cache, which releases since
    mid-2026 read (quantize_static's calibration_cache_path)."""
    import inspect

    import onnxruntime
    from onnxruntime.quantization import quantize_static

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        raise DVFaceError(f"the int8 export hands its measured ranges to onnxruntime's quantiser as a calibration "
                          f"cache, which this onnxruntime ({onnxruntime.__version__}) cannot read; upgrade it: "
                          "pip install -U onnxruntime")


def _quantize_graph(src: Path, graph: str, out: Path, ranges: dict[str, tuple]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="dvface-quantize-") as tmp:
        model = onnx.load(str(src / graph))
        for i, node in enumerate(model.graph.node):  # the 2D rewrite leaves nodes unnamed; exclusion is by name
            node.name = node.name or f"node{i}"
        constants = {t.name for t in model.graph.initializer}
        keep = [node.name for node in model.graph.node if node.op_type in QUANTIZED_OPS and kept_fp32(node, constants)]
        staged = Path(tmp) / graph  # the quantiser wants the weights beside the graph it reads
        onnx.save(model, str(staged), save_as_external_data=True, location=f"{graph}.data")
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
            name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()
        }), cache)
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # the quantiser logs advice to the root logger
        try:
            quantize_static(str(staged), str(out / graph), None, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, use_external_data_format=True,
                            calibration_cache_path=str(cache), nodes_to_exclude=keep)
        finally:
            root.setLevel(level)


def quantize_export(
    src: str | Path,
    out: str | Path,
    windows: list[np.ndarray],
    calibration: dict | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Write an int8 copy of the fp32 export `src` to `out` (created; a previous export there is
    replaced), its ranges measured on `windows` ((1, 3, T, H, W) in [-1, 1], the export's shape: degraded
    face clips like those it will restore); `calibration` (where they came from) goes into the manifest.
    Returns the manifest.

    Every graph pair is quantised: the main window's and each short window's, whose calibration
    windows are the first frames of the main ones."""
    from .onnx_model import read_manifest

    _check_quantizer()
    src, out = Path(src), Path(out)
    manifest = read_manifest(src)
    if manifest["precision"] != "fp32":
        raise InputError(f"{src} is an {manifest['precision']} export; quantise the fp32 export")
    shape = manifest["shape"]
    if not windows or windows[0].shape != (1, 3, shape["frames"], shape["height"], shape["width"]):
        raise InputError(f"calibration windows must be (1, 3, {shape['frames']}, {shape['height']}, {shape['width']})")
    pairs = {shape["frames"]: (ENCODE_GRAPH, RESTORE_GRAPH)}
    pairs.update({int(n): short_graphs(int(n)) for n in manifest.get("short_windows", {})})
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file())):
        raise InputError(f"{out} exists and is not an ONNX export folder; choose a new or empty output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for frames, (encode, restore) in sorted(pairs.items(), reverse=True):
            start = time.perf_counter()
            pixels = [{"pixels": np.ascontiguousarray(w[:, :, :frames])} for w in windows]
            encoder = _session(src / encode, threads)
            restore_feeds = []
            for feed in pixels:
                z, f_s, f_t, detail = encoder.run(None, feed)
                restore_feeds.append({"z": z, "f_s": f_s, "f_t": f_t, "prior_scale": np.array(1.0, np.float32),
                                      "detail": detail})
            del encoder
            for graph, feeds in ((encode, pixels), (restore, restore_feeds)):
                _quantize_graph(src, graph, tmp, activation_ranges(src, graph, feeds, threads))
            progress(f"quantised the {frames}-frame graphs in {time.perf_counter() - start:.0f} s")
        graphs = [g for pair in pairs.values() for g in pair]
        shared = share_external_data(tmp, graphs)
        for io in [*manifest["graphs"].values(), *(g for p in manifest.get("short_windows", {}).values()
                                                  for g in p.values())]:
            io["files"] = [io["file"], shared]
        manifest.update(precision="int8", quantized={
            "ops": list(QUANTIZED_OPS), "kept_fp32": list(FP32_CONVS), "weights": "int8 per channel",
            "activations": "uint8 per tensor",
            "calibration_windows": len(windows), **(calibration or {}),
            "from_export_created": manifest.get("created")},
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o755)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest

