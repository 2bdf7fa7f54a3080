"""The same ONNX export on OpenVINO's CPU runtime, which runs it in bf16 where the CPU has AMX.

On the development machine's Xeon (AMX) OpenVINO ran the bundled model's window about 3.5x as fast
as onnxruntime's fp32 CPU provider, within 1.6 8-bit levels of it; in fp32 it was 1.2x as fast
(docs/benchmarks.md, "OpenVINO on the CPU"). `OvModel` is `OrtModel` with OpenVINO compiled models
in place of onnxruntime sessions: shapes, padding and short windows are shared. Compiled graphs
are cached in the user cache, in a folder per precision, thread count and OpenVINO version
(`cache_key`).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DVFaceError
from ..paths import user_cache_dir
from .onnx_model import OrtModel, read_manifest

OPENVINO = "OpenVINO"  # how `OvModel.providers` names the runtime, beside onnxruntime's providers
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def openvino_precision(precision: str) -> str:
    """`auto`: OpenVINO's own choice for this CPU (bf16 on CPUs with AMX, else fp32); bf16 is refused
    on a CPU without bf16 instructions, where OpenVINO would quietly run fp32 instead. int8 runs a
    model's int8 export (`onnx_int8`), the rest of its graphs in fp32."""
    if precision not in PRECISIONS:
        raise DVFaceError(f"precision {precision!r} is not available on the openvino backend; use fp32, bf16 or int8")
    if importlib.util.find_spec("openvino") is None:
        raise DVFaceError("the openvino backend needs OpenVINO, which is not installed: `pip install openvino` "
                          "(the dvface-plugin[cpu] extra includes it), or use --backend ort")
    import openvino

    core = openvino.Core()
    if precision == "auto":
        return "bf16" if core.get_property("CPU", "INFERENCE_PRECISION_HINT") == openvino.Type.bf16 else "fp32"
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise DVFaceError("this CPU has no bf16 instructions (AVX512-BF16 or AMX); use --precision fp32")
    return precision


def cache_key(settings: dict[str, Any], version: str) -> str:
    """The cache folder for compiled graphs of these settings. OpenVINO's own blob names leave the
    precision out: a bf16 model compiled after an fp32 one loaded the fp32 blob and crashed."""
    parts = [f"{key.lower()}-{value}" for key, value in sorted(settings.items())]
    return re.sub(r"[^A-Za-z0-9.]+", "_", "-".join(parts + [f"ov{version}"]))


def compile_settings(precision: str, threads: int | None = None) -> dict[str, Any]:
    """OpenVINO's CPU settings for a precision (fp32, bf16, or int8: an int8 export's float parts in
    fp32) and thread count (None: its own, one per physical core). Pinned, copies given fewer threads than cores (streams, Ray workers) all
    start on the same cores: two single-threaded copies ran at 4.66 crops/s pinned, 8.50 unpinned."""
    settings: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                                "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        settings.update(INFERENCE_NUM_THREADS=int(threads), ENABLE_CPU_PINNING=False)
    return settings


class OpenVinoSession:
    """One compiled graph with onnxruntime's `run(None, feeds)`; one call at a time, as a stream runs."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._outputs = compiled.outputs

    @classmethod
    def compile(cls, path: str | Path, precision: str, threads: int | None = None) -> "OpenVinoSession":
        """An ONNX file compiled for the CPU with `compile_settings`, uncached (benchmarks)."""
        import openvino

        return cls(openvino.Core().compile_model(str(path), "CPU", compile_settings(precision, threads)))

    def run(self, names: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self._request.infer(feeds, share_outputs=False)  # copies: the next call reuses the buffers
        return [result[port] for port in self._outputs]

    def get_providers(self) -> list[str]:
        return [OPENVINO]


class OvModel(OrtModel):
    """A DVFace ONNX export on OpenVINO's CPU device, in `precision` (see `openvino_precision`): the
    fp32 export in fp32 or bf16, the int8 export in int8.

    threads: OpenVINO's inference threads (None: every core). One copy on both cores ran 1.09x as
    fast as two single-threaded copies side by side, unlike onnxruntime, so a restorer opens one.
    """

    runtime = "openvino"

    def __init__(
        self, folder: str | Path, precision: str = "auto", threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if precision == "auto" and read_manifest(Path(folder))["precision"] == "int8":
            precision = "int8"  # an int8 export given by its folder (the VapourSynth filter's model=) runs as int8
        self._ov_precision = openvino_precision(precision)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else user_cache_dir("openvino")
        super().__init__(folder, threads=threads)
        wanted = "int8" if self._ov_precision == "int8" else "fp32"
        if self.precision != wanted:
            raise DVFaceError(f"{self.folder} is an {self.precision} export; OpenVINO runs the fp32 export in fp32 "
                              "or bf16 and the int8 export in int8 (chosen with --precision)")
        self.precision = self._ov_precision

    def _start(self, providers: Sequence[str] | str | None, trt_cache_dir: str | Path | None,
               threads: int | None) -> Callable[[str], Any]:
        import openvino

        core = openvino.Core()
        settings = compile_settings(self._ov_precision, threads)
        try:
            folder = self._cache_dir / cache_key(settings, openvino.__version__)
            folder.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(folder)})
        except OSError:  # a read-only home: compile every time
            pass

        def open_graph(graph: str) -> OpenVinoSession:
            path = self.folder / graph
            try:
                return OpenVinoSession(core.compile_model(str(path), "CPU", settings))
            except Exception as exc:  # OpenVINO raises RuntimeError with its own text
                raise DVFaceError(
                    f"OpenVINO {openvino.__version__} cannot load {path} ({type(exc).__name__}: "
                    f"{str(exc).strip()[:400]}); if the file is damaged or from another dvface version, export it "
                    "again, or use --backend ort"
                ) from exc

        return open_graph
