"""What a DVFace ONNX export costs: FLOPs counted from the graphs, and the cores' peak on a large
MatMul in the same runtime and precision, for `dvface bench model`.

FLOPs are 2 x multiply-adds of Conv, ConvTranspose, MatMul and Gemm nodes, from the shapes ONNX
shape inference gives the (statically shaped) graph; every other op is memory-bound and left out.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import numpy as np

from .onnx_format import ENCODE_GRAPH, RESTORE_GRAPH

COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def graph_flops(path: str | Path) -> int:
    """FLOPs of one run of the graph at `path` (its external weights are not read)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in model.graph.initializer}
    for info in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    total = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            continue
        a, b, out = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
        if not (a and b and out) or 0 in (*a, *b, *out):
            raise ValueError(f"{path}: node {node.name} ({node.op_type}) has no static shape; cannot count its FLOPs")
        if node.op_type == "Conv":  # weight (Cout, Cin/groups, *kernel): every output sums Cin/groups x kernel
            total += 2 * int(np.prod(out)) * int(np.prod(b[1:]))
        elif node.op_type == "ConvTranspose":  # weight (Cin, Cout/groups, *kernel): every input scatters
            total += 2 * int(np.prod(a)) * int(np.prod(b[1:]))
        else:
            transposed = any(attr.name == "transA" and attr.i for attr in node.attribute)
            total += 2 * int(np.prod(out)) * (a[-2] if transposed else a[-1])
    return total


def export_flops(folder: Path) -> int:
    """FLOPs of one window through an export's main graph pair (encode + priors, restore)."""
    return graph_flops(folder / ENCODE_GRAPH) + graph_flops(folder / RESTORE_GRAPH)


def matmul_peak_gflops(threads: int | None = None, size: int = 2048, repeat: int = 5,
                       openvino_precision: str | None = None, int8: bool = False) -> float:
    """GFLOP/s of one large fp32 MatMul on onnxruntime's CPU provider, with the model's thread count:
    what these cores reach on the densest kernel, so a model's rate reads as a fraction of it.
    `openvino_precision` (fp32 or bf16) runs it on OpenVINO instead, as `OvModel` runs the model.
    `int8`: the MatMul in the int8 export's form (quantised input, int8 weights, quantised output),
    in GOP/s."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["c"])]
    inputs, constants = ["a", "b"], []
    if int8:
        constants = [numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
                     numpy_helper.from_array(np.array(128, np.uint8), "zero"),
                     numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "bq"),
                     numpy_helper.from_array(np.full(size, 0.01, np.float32), "bscale"),
                     numpy_helper.from_array(np.zeros(size, np.int8), "bzero")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["a"]),
                 helper.make_node("DequantizeLinear", ["bq", "bscale", "bzero"], ["b"], axis=1),
                 helper.make_node("MatMul", ["a", "b"], ["y"]),
                 helper.make_node("QuantizeLinear", ["y", "scale", "zero"], ["yq"]),
                 helper.make_node("DequantizeLinear", ["yq", "scale", "zero"], ["c"])]
        inputs = ["x"]
    graph = helper.make_graph(nodes, "peak",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in inputs],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    if openvino_precision is None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    else:
        from .openvino_model import OpenVinoSession

        with tempfile.TemporaryDirectory(prefix="dvface-peak-") as tmp:
            (Path(tmp) / "peak.onnx").write_bytes(model)
            session = OpenVinoSession.compile(Path(tmp) / "peak.onnx", openvino_precision, threads)
    run = functools.partial(session.run, None)
    feed = {n: rng.standard_normal((size, size), dtype=np.float32) for n in inputs}
    run(feed)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(feed)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
