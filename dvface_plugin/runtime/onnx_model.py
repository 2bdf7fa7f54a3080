"""DVFace on onnxruntime, without torch: what hosts run when torch is too heavy to install.

`OrtModel` mirrors `DVFace`'s three inference steps on numpy arrays over the graphs written by
`dvface export onnx` (see `onnx_export`). The graphs have fixed shapes, so a clip is padded the
way `DVFace.encode` pads (last frame repeated, edge pixels replicated) up to the smallest exported
window that holds it (the export's own, or one of its shorter 4k+1-frame pairs) and the result is
cropped back. Padding beyond the 4k+1 / 32-px minimum changes what the model sees, so a clip
whose length has no pair of its own (an export without short pairs, or a smaller crop) is close
to, not equal to, the torch result; otherwise they are equal within float tolerance.

This module imports only the standard library, numpy, onnxruntime and the torch-free `config` and
`errors`. `ensure_onnx` imports the exporter (and with it torch) only when it has to export.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .. import __version__
from ..errors import DVFaceError, InputError, WeightsError
from ..model.config import DVFaceConfig
from ..paths import user_cache_dir
from .onnx_format import ENCODE_GRAPH, FORMAT, FORMAT_VERSION, MANIFEST_NAME, RESTORE_GRAPH, file_sha256

SHIPPED_ONNX_DIR = "onnx"  # a model folder may ship its export here
SHIPPED_INT8_DIR = "onnx-int8"  # and its int8 copy (`onnx_int8`) here
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")


def export_precision(precision: str) -> str:
    """The export a run precision needs: fp16 and int8 have their own, everything else runs the fp32
    export (OpenVINO's bf16 included)."""
    return precision if precision in ("fp16", "int8") else "fp32"

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
AUTO_ORDER = (TENSORRT, CUDA, CPU)
PROVIDER_ALIASES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
# onnxruntime builds that install the same `onnxruntime` package directory: one per environment.
RUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-silicon",
)
GPU_EXTRA_HINT = (
    "install the GPU build instead of the CPU one: `pip uninstall -y onnxruntime && "
    "pip install 'dvface-plugin[gpu]'` (the onnxruntime-gpu extra), with CUDA/TensorRT libraries present"
)


# --- the onnxruntime installation --------------------------------------------------------------


def installed_runtimes() -> list[str]:
    """Installed onnxruntime distributions (normalised names), from package metadata only."""
    names = set()
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in RUNTIME_DISTRIBUTIONS:
            names.add(name)
    return sorted(names)


def check_runtime_install(runtimes: Sequence[str] | None = None) -> None:
    """Refuse a broken environment before importing onnxruntime, whose import would fail obscurely."""
    runtimes = installed_runtimes() if runtimes is None else list(runtimes)
    if len(runtimes) > 1:
        keep = "onnxruntime-gpu" if "onnxruntime-gpu" in runtimes else runtimes[0]
        raise DVFaceError(
            f"several onnxruntime builds are installed in one environment ({', '.join(runtimes)}); they overwrite "
            f"each other's files. Fix: `pip uninstall -y {' '.join(runtimes)} && pip install {keep}` "
            "(or the dvface-plugin extra [cpu] or [gpu], never both)"
        )
    if not runtimes:
        raise DVFaceError(
            "onnxruntime is not installed; install exactly one of the extras: "
            "`pip install 'dvface-plugin[cpu]'` (onnxruntime) or `pip install 'dvface-plugin[gpu]'` (onnxruntime-gpu)"
        )


def import_onnxruntime():
    check_runtime_install()
    import onnxruntime

    return onnxruntime


def max_supported_opset(ort) -> int | None:
    """Highest default-domain opset this onnxruntime knows, from its operator schemas (None if not exposed)."""
    try:
        schemas = ort.capi.onnxruntime_pybind11_state.get_all_operator_schema()
    except AttributeError:
        return None
    versions = [s.since_version for s in schemas if s.domain in ("", "ai.onnx")]
    return max(versions) if versions else None


def resolve_providers(requested: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
    """Provider names to use: `requested` (aliases allowed) checked against `available`, or TensorRT > CUDA > CPU."""
    if requested is None:
        return [p for p in AUTO_ORDER if p in available] or [CPU]
    if isinstance(requested, str):
        requested = [requested]
    names = []
    for item in requested:
        name = PROVIDER_ALIASES.get(str(item).lower(), str(item))
        if name not in available:
            raise DVFaceError(
                f"execution provider {name} was requested but this onnxruntime offers only "
                f"{', '.join(available)}; {GPU_EXTRA_HINT}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise DVFaceError("providers=[] names no execution provider; pass None to choose automatically")
    return names


# --- files and caches ------------------------------------------------------------------------




def gpu_name(device_id: int) -> str | None:
    """Name of CUDA device `device_id` as nvidia-smi reports it (honouring CUDA_VISIBLE_DEVICES), or None."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    index = ids[device_id] if device_id < len(ids) else str(device_id)
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", index],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0] if out else None


def trt_cache_folder(
    base: Path, manifest: dict, manifest_sha: str, device_id: int, gpu: str | None, ort_version: str
) -> Path:
    """A TensorRT engine cache folder whose name holds everything an engine depends on.

    The manifest's sha256 covers weights, config, shapes, precision and exporter; the GPU model
    and onnxruntime version decide what TensorRT builds. A change of any gives a new folder, so a
    stale engine is never loaded.
    """
    shape = manifest["shape"]
    dims = "x".join(str(shape[k]) for k in ("batch", "frames", "height", "width"))
    gpu_slug = re.sub(r"[^A-Za-z0-9.]+", "_", gpu or "unknown-gpu").strip("_")
    name = (
        f"{manifest['config_name']}-{manifest_sha[:16]}-{manifest['precision']}-{dims}"
        f"-{gpu_slug}-dev{device_id}-ort{ort_version}"
    )
    return Path(base) / "tensorrt" / name


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on `path` across processes (and threads), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if sys.platform == "win32":
            import msvcrt
            import time

            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting for the exporter
                    time.sleep(1)
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(
            f"{path} not found: {folder} is not a DVFace ONNX export; create one with "
            "`dvface export onnx --model MODEL -o FOLDER`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); export the model again") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest (format {manifest.get('format')!r}, "
            f"version {manifest.get('format_version')!r}); export the model again with this dvface ({__version__})"
        )
    return manifest


class _ExportPlaces(NamedTuple):
    """Where a model's export of one precision and shape may be, and a test that one there matches."""

    shipped: Path
    cached: Path
    frames: int
    size: int
    usable: Callable[[Path], bool]


def _export_places(
    model_folder: Path, cache_dir: str | Path | None, precision: str, frames: int | None, size: int | None
) -> _ExportPlaces:
    config = DVFaceConfig.load(model_folder / "config.json")
    weights = model_folder / "dvface.safetensors"
    if not weights.is_file():
        raise WeightsError(f"weights file {weights} not found; a model folder holds config.json and dvface.safetensors")
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"export precision {precision!r} is not one of {EXPORT_PRECISIONS}")
    t = config.window if frames is None else int(frames)
    s = config.crop_size if size is None else int(size)
    want = {"batch": 1, "frames": t, "height": s, "width": s}
    sha = file_sha256(weights)

    def usable(folder: Path) -> bool:
        try:
            manifest = read_manifest(folder)
        except WeightsError:
            return False
        return (
            manifest["precision"] == precision
            and manifest["shape"] == want
            and manifest.get("weights_sha256") == sha
            and all((folder / name).is_file() for name in (ENCODE_GRAPH, RESTORE_GRAPH))
        )

    cache_dir = Path(cache_dir) if cache_dir is not None else user_cache_dir("onnx")
    cached = cache_dir / f"{config.name}-{sha[:16]}-{precision}-{t}x{s}x{s}"
    shipped = model_folder / (SHIPPED_INT8_DIR if precision == "int8" else SHIPPED_ONNX_DIR)
    return _ExportPlaces(shipped, cached, t, s, usable)


def find_onnx(
    model_folder: str | Path,
    cache_dir: str | Path | None = None,
    *,
    precision: str = "fp32",
    frames: int | None = None,
    size: int | None = None,
) -> Path | None:
    """A model's existing ONNX export of that precision (fp32, fp16 or int8) and shape, or None; never exports.

    A matching export shipped in `model_folder/onnx` (`onnx-int8` for int8) comes first, then one in
    `cache_dir` (default: the user cache) under a name holding the weights' checksum, precision and shape.
    """
    return _existing(_export_places(Path(model_folder), cache_dir, precision, frames, size))


def _existing(places: _ExportPlaces) -> Path | None:
    return next((f for f in (places.shipped, places.cached) if places.usable(f)), None)


def ensure_onnx(
    model_folder: str | Path,
    cache_dir: str | Path | None = None,
    *,
    precision: str = "fp32",
    frames: int | None = None,
    size: int | None = None,
    backbone: str | Path | None = None,
) -> Path:
    """The ONNX export folder of a model folder (as `find_onnx`), exporting it into the cache at first use.

    A file lock makes concurrent first uses (several hosts, farm nodes on one machine) export once.
    Exporting needs torch; finding an existing export does not. An int8 export needs calibration
    data, so it is never made here: its absence is an error naming the command that makes it.
    """
    model_folder = Path(model_folder)
    places = _export_places(model_folder, cache_dir, precision, frames, size)
    found = _existing(places)
    if found is not None:
        return found
    if precision == "int8":
        raise WeightsError(
            f"model {model_folder} has no int8 export for {places.frames}-frame {places.size} px windows; make one "
            f"with `dvface export onnx --int8 --calibration DATA --model {model_folder} -o "
            f"{model_folder / SHIPPED_INT8_DIR}` (DATA: a folder made by `dvface prepare`), or use --precision fp32"
        )
    target = places.cached
    with file_lock(target.parent / f".{target.name}.lock"):
        if places.usable(target):  # another process exported it while we waited
            return target
        from .onnx_export import export_model_folder

        export_model_folder(model_folder, target, frames=places.frames, size=places.size,
                            fp16=precision == "fp16", backbone=backbone)
    return target


# --- the model -------------------------------------------------------------------------------


@dataclass
class OrtPriors:
    """f_s and f_t (B, T', N, c) float32 on a (grid_h, grid_w) token grid, as `PriorFeatures`."""

    f_s: np.ndarray
    f_t: np.ndarray
    grid: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.f_s.nbytes + self.f_t.nbytes


@dataclass
class OrtLatent:
    """The padded clip's latent (B, 16, T', h, w) and the size to crop back to, as `Latent`.

    The encode graph computes the priors in the same run (saving a round trip of z), so they
    travel with the latent until `encode_priors` hands them out; `nbytes` counts z and the
    `detail_skip` detail, not the priors.
    """

    z: np.ndarray
    frames: int
    height: int
    width: int
    priors: OrtPriors
    detail: np.ndarray | None = None
    window: int = 0  # frames of the graph pair that encoded it (0: the export's own window)

    @property
    def nbytes(self) -> int:
        return self.z.nbytes + (0 if self.detail is None else self.detail.nbytes)


class OrtModel:
    """A DVFace ONNX export on onnxruntime, with `DVFace`'s inference API on numpy arrays.

    providers: None picks TensorRT > CUDA > CPU among those this onnxruntime offers (never Azure);
    a list of names or aliases ("tensorrt", "cuda", "cpu") is used as given, and a provider that is
    missing or fails to start is an error rather than a silent CPU fallback. TensorRT engines are
    cached under `trt_cache_dir` (default: the user cache) in a folder keyed by `trt_cache_folder`.
    """

    runtime = "onnxruntime"  # the library that runs the graphs, as users name it

    def __init__(
        self,
        folder: str | Path,
        providers: Sequence[str] | str | None = None,
        device_id: int = 0,
        trt_cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise WeightsError(f"ONNX folder {self.folder} not found; create it with `dvface export onnx -o FOLDER`")
        self.manifest = read_manifest(self.folder)
        for name in (ENCODE_GRAPH, RESTORE_GRAPH):
            if not (self.folder / name).is_file():
                raise WeightsError(
                    f"{self.folder / name} not found: the ONNX export in {self.folder} is incomplete; export it again"
                )
        self._check_weights()
        self.config = DVFaceConfig.from_dict(self.manifest["config"])
        self.precision: str = self.manifest["precision"]
        shape = self.manifest["shape"]
        self.shape = (int(shape["frames"]), int(shape["height"]), int(shape["width"]))
        self.manifest_sha = file_sha256(self.folder / MANIFEST_NAME)
        self.device_id = int(device_id)
        self.trt_cache: Path | None = None
        self._wanted: list[str] = []  # the providers asked for by name, set by `_start`
        self._open: Callable[[str], Any] = self._start(providers, trt_cache_dir, threads)
        self._encode = self._open(ENCODE_GRAPH)
        self._restore = self._open(RESTORE_GRAPH)
        self.providers: list[str] = self._encode.get_providers()
        dropped = [n for n in self._wanted if n not in self.providers]
        if dropped:
            raise DVFaceError(
                f"execution provider {', '.join(dropped)} was requested, but onnxruntime could not start it "
                f"(running on {', '.join(self.providers)}): its CUDA/TensorRT libraries are missing or do not "
                "match this onnxruntime-gpu build; check the onnxruntime-gpu install notes"
            )
        # Graph pairs of shorter windows, opened the first time a clip that short comes.
        self._short = {int(n): (g["encode_priors"]["file"], g["restore"]["file"])
                       for n, g in self.manifest.get("short_windows", {}).items()}
        self._pairs: dict[int, tuple] = {}

    def _start(self, providers: Sequence[str] | str | None, trt_cache_dir: str | Path | None,
               threads: int | None) -> Callable[[str], Any]:
        """How to open a graph file of the export: as an onnxruntime session on these providers.

        Another runtime overrides this with sessions that have onnxruntime's `run(None, feeds)` and
        `get_providers()`; everything else here (shapes, padding, short windows) is shared.
        """
        ort = import_onnxruntime()
        self._check_opset(ort)
        available = ort.get_available_providers()
        names = resolve_providers(providers, available)
        self._wanted = names if providers is not None else []
        options = self._provider_options(names, ort, trt_cache_dir)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The CPU arena kept a window's large intermediates: 3.5 GB peak instead of 1.6, for no speed.
        session_options.enable_cpu_mem_arena = False
        session_options.log_severity_level = 3  # node-placement warnings are not the user's business
        if threads is not None:  # farm workers sharing a machine; None: one per physical core
            session_options.intra_op_num_threads = int(threads)
        return functools.partial(self._session, ort, names=names, options=options, session_options=session_options)

    # --- inference -----------------------------------------------------------------------------

    def encode(self, x: np.ndarray) -> OrtLatent:
        """Pad (B, 3, T, H, W) pixels in [-1, 1] to the exported shape and encode; priors come along."""
        x = _check_clip(x)
        b, _, frames, height, width = x.shape
        t, h, w = self.shape
        if frames > t or height > h or width > w:
            raise InputError(
                f"clip of {frames}x{height}x{width} (frames x H x W) is larger than this ONNX export's "
                f"{t}x{h}x{w}; export again with `dvface export onnx --frames {max(frames, t)} --size "
                f"{max(height, width, h)}` (rounded up to the model's multiples) or restore it in windows"
            )
        window = min((n for n in self._short if n >= frames), default=0)
        encode = self._pair(window)[0]
        x = np.pad(x, ((0, 0), (0, 0), (0, (window or t) - frames), (0, h - height), (0, w - width)), mode="edge")
        runs = [encode.run(None, {"pixels": x[i : i + 1]}) for i in range(b)]
        z, f_s, f_t, *detail = (np.concatenate(parts) for parts in zip(*runs))
        multiple = self.config.spatial_multiple
        priors = OrtPriors(f_s, f_t, (h // multiple, w // multiple))
        return OrtLatent(z, frames, height, width, priors, detail[0] if detail else None, window)

    def encode_priors(self, latent: OrtLatent) -> OrtPriors:
        return latent.priors

    def restore_latent(self, latent: OrtLatent, priors: OrtPriors, prior_scale: float = 1.0) -> np.ndarray:
        """Restored clip (B, 3, T, H, W) float32 in [-1, 1], cropped back to the input's size."""
        scale = float(prior_scale)
        if not (math.isfinite(scale) and 0.0 <= scale <= 1.0):
            raise InputError(f"prior_scale must be in [0, 1], got {prior_scale}")
        scale_in = np.array(scale, dtype=np.float32)
        restore = self._pair(latent.window)[1]
        outs = [
            restore.run(
                None,
                {
                    "z": latent.z[i : i + 1],
                    "f_s": priors.f_s[i : i + 1],
                    "f_t": priors.f_t[i : i + 1],
                    "prior_scale": scale_in,
                    **({} if latent.detail is None else {"detail": latent.detail[i : i + 1]}),
                },
            )[0]
            for i in range(latent.z.shape[0])
        ]
        out = np.concatenate(outs)
        return np.ascontiguousarray(out[:, :, : latent.frames, : latent.height, : latent.width])

    def __call__(self, x: np.ndarray, prior_scale: float = 1.0, priors: OrtPriors | None = None) -> np.ndarray:
        latent = self.encode(x)
        return self.restore_latent(latent, priors if priors is not None else self.encode_priors(latent), prior_scale)

    def weights_digest(self) -> str:
        """The exported torch model's `weights_digest()`: the same weights give the same identity."""
        return self.manifest["weights_digest"]

    def _pair(self, window: int) -> tuple:
        """The (encode, restore) sessions for windows of `window` frames (0: the export's own)."""
        if not window:
            return self._encode, self._restore
        if window not in self._pairs:
            self._pairs[window] = tuple(self._open(name) for name in self._short[window])
        return self._pairs[window]

    # --- setup ---------------------------------------------------------------------------------

    def _check_weights(self) -> None:
        """Compare the weights file beside the export (in it or its parent folder) with the manifest."""
        expected = self.manifest.get("weights_sha256")
        if not expected:
            return
        name = self.manifest.get("weights_file") or "dvface.safetensors"
        for candidate in (self.folder / name, self.folder.parent / name):
            if candidate.is_file():
                found = file_sha256(candidate)
                if found != expected:
                    raise WeightsError(
                        f"ONNX export {self.folder} was made from weights with sha256 {expected[:16]}..., but "
                        f"{candidate} has sha256 {found[:16]}...: the graphs are stale; export again with "
                        f"`dvface export onnx --model {candidate.parent} -o {self.folder}`"
                    )
                return

    def _check_opset(self, ort) -> None:
        opset = int(self.manifest["opset"])
        supported = max_supported_opset(ort)
        if supported is not None and opset > supported:
            raise DVFaceError(
                f"{self.folder} needs ONNX opset {opset}, but the installed onnxruntime {ort.__version__} supports "
                f"opsets up to {supported}; upgrade onnxruntime (`pip install -U onnxruntime` or onnxruntime-gpu)"
            )

    def _provider_options(self, names: list[str], ort, trt_cache_dir: str | Path | None) -> list[dict]:
        options = []
        for name in names:
            if name == TENSORRT:
                base = Path(trt_cache_dir) if trt_cache_dir is not None else user_cache_dir("tensorrt")
                folder = trt_cache_folder(
                    base, self.manifest, self.manifest_sha, self.device_id, gpu_name(self.device_id), ort.__version__
                )
                folder.mkdir(parents=True, exist_ok=True)
                self.trt_cache = folder
                options.append(
                    {
                        "device_id": str(self.device_id),
                        "trt_fp16_enable": str(self.precision == "fp16"),
                        "trt_engine_cache_enable": "True",
                        "trt_engine_cache_path": str(folder),
                        "trt_timing_cache_enable": "True",
                        "trt_timing_cache_path": str(folder),
                    }
                )
            elif name == CUDA:
                options.append({"device_id": str(self.device_id)})
            else:
                options.append({})
        return options

    def _session(self, ort, graph: str, names: list[str], options: list[dict], session_options):
        path = self.folder / graph
        if not path.is_file():
            raise WeightsError(f"{path} not found: the ONNX export in {self.folder} is incomplete; export it again")
        try:
            return ort.InferenceSession(
                str(path), sess_options=session_options, providers=names, provider_options=options
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise DVFaceError(
                f"onnxruntime {ort.__version__} cannot load {path} on {', '.join(names)} "
                f"({type(exc).__name__}: {str(exc).strip()[:400]}); if the file is damaged or from another "
                "dvface version, export it again; if a GPU provider failed, try providers=['cpu']"
            ) from exc


def _check_clip(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 5 or x.shape[1] != 3:
        raise InputError(f"expected a clip array (B, 3, T, H, W), got shape {x.shape}")
    if min(x.shape) < 1:
        raise InputError(f"clip has an empty dimension: shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("clip contains NaN or Inf values; clean the input frames before restoring")
    peak = float(np.abs(x).max())
    if peak > 1.0 + 1e-3:
        raise InputError(
            f"clip values must lie in [-1, 1], found |x| up to {peak:.3g}; map 8-bit frames with x / 127.5 - 1"
        )
    return x
