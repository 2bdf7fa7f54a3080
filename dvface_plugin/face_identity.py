"""Face identity descriptors for `dvface eval`: dlib's ResNet face descriptor (128-D; dlib
treats a Euclidean distance below 0.6 as the same person), from the optional ``eval`` extra
(``dlib-bin`` and ``face-recognition-models``, both offline wheels).

The face is found on the reference frame with dlib's HOG frontal-face detector (built into
dlib, no model file) and that box seeds the 5-point shape predictor on both frames being
compared: the benchmark's 512 x 512 crops are face-centred but not FFHQ-aligned (the face
sits off-centre and at different scales), so a fixed box puts the landmarks off the eyes.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError
from .faces.imageops import to_uint8

INSTALL_HINT = 'pip install "dvface-plugin[eval]"'
SAME_PERSON = 0.6  # dlib's threshold on the descriptor distance
MODEL_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


class IdentityUnavailable(WeightsError):
    """dlib or the face-recognition-models files are not installed."""


def _models_dir() -> Path:
    # Not `import face_recognition_models`: its __init__ needs pkg_resources, gone from
    # setuptools >= 81. Only the package folder holding the .dat files is needed.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityUnavailable(f"the identity metric needs face-recognition-models: "
                                  f"{INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise IdentityUnavailable(f"{', '.join(missing)} missing from {folder}: {INSTALL_HINT}")
    return folder


class FaceIdentity:
    """dlib's detector, 5-point shape predictor and ResNet descriptor, loaded together."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise IdentityUnavailable(f"the identity metric needs dlib: {INSTALL_HINT}") from exc
        folder = _models_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(folder / MODEL_FILES[0]))
        self._descriptor = dlib.face_recognition_model_v1(str(folder / MODEL_FILES[1]))

    def face_box(self, frame: np.ndarray) -> Box | None:
        """The largest frontal face dlib's HOG detector finds (None when it finds none)."""
        faces = self._detector(_rgb_u8(frame), 0)
        if not faces:
            return None
        r = max(faces, key=lambda r: r.area())
        return r.left(), r.top(), r.right(), r.bottom()

    def descriptor(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """128-D descriptor of the face in ``box``, aligned by its 5 landmarks."""
        img = _rgb_u8(frame)
        shape: Any = self._shape(img, self._dlib.rectangle(*box))
        return np.asarray(self._descriptor.compute_face_descriptor(img, shape), np.float64)


def _rgb_u8(frame: np.ndarray) -> np.ndarray:
    """The contiguous 8-bit RGB dlib takes."""
    return np.ascontiguousarray(to_uint8(np.asarray(frame)))


@lru_cache(maxsize=1)
def load_face_identity() -> FaceIdentity:
    """The models, loaded once per process (about 0.3 s); IdentityUnavailable when absent."""
    return FaceIdentity()
