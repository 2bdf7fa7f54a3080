"""CenterFace detector: finds real faces at the right place, at every bit depth and frame size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from dvface_plugin.errors import WeightsError
from dvface_plugin.faces.detector import CenterFaceDetector, bundled_centerface_path, default_providers

# Region of skimage's astronaut that holds the face, pasted into synthetic frames.
REGION = (30, 230, 130, 330)  # y0, y1, x0, x1


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()


@pytest.fixture(scope="module")
def reference(detector):
    """Landmarks of the astronaut face in region coordinates, from the unmodified image."""
    dets = detector.detect(data.astronaut())
    assert len(dets) == 1
    y0, _, x0, _ = REGION
    return dets[0].landmarks - np.array([x0, y0])


def paste(frame: np.ndarray, x: int, y: int, scale: float) -> np.ndarray:
    y0, y1, x0, x1 = REGION
    face = cv2.resize(data.astronaut()[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


def plate(h: int = 720, w: int = 1280) -> np.ndarray:
    return np.full((h, w, 3), 110, np.uint8)


@pytest.mark.parametrize(("x", "y", "scale"), [(100, 80, 1.0), (900, 400, 0.6), (500, 300, 1.6)])
def test_finds_pasted_astronaut_at_its_position(detector, reference, x, y, scale):
    dets = detector.detect(paste(plate(), x, y, scale))
    assert len(dets) == 1
    expected = reference * scale + np.array([x, y])
    eye_dist = np.linalg.norm(expected[1] - expected[0])
    assert np.abs(dets[0].landmarks - expected).max() < 0.15 * eye_dist
    box = dets[0].box
    assert box[0] < expected[:, 0].min() and box[2] > expected[:, 0].max()
    assert box[1] < expected[:, 1].min() and box[3] > expected[:, 1].max()


def test_landmark_order_is_eyes_nose_mouth_left_to_right(detector):
    lm = detector.detect(paste(plate(), 400, 200, 1.0))[0].landmarks
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()


def test_two_faces_in_one_frame(detector):
    frame = paste(paste(plate(), 100, 200, 1.0), 800, 250, 1.0)
    dets = sorted(detector.detect(frame), key=lambda d: d.box[0])
    assert len(dets) == 2
    assert dets[0].box[2] < 400 < 800 < dets[1].box[0]


def test_high_bit_depth_frames_detect_like_8bit(detector):
    frame8 = paste(plate(), 300, 150, 1.0)
    frame16 = frame8.astype(np.uint16) * 257
    frame_f = frame8.astype(np.float32) / 255.0
    ref = detector.detect(frame8)[0]
    for frame in (frame16, frame_f):
        det = detector.detect(frame)[0]
        np.testing.assert_allclose(det.landmarks, ref.landmarks, atol=1e-3)


def test_large_frame_is_downscaled_but_coordinates_are_full_resolution(detector, reference):
    frame = paste(plate(1080, 1920), 1400, 700, 1.5)
    assert max(frame.shape) > detector.max_side
    dets = detector.detect(frame)
    assert len(dets) == 1
    expected = reference * 1.5 + np.array([1400, 700])
    assert np.abs(dets[0].landmarks - expected).max() < 0.15 * np.linalg.norm(expected[1] - expected[0])


def test_batch_matches_single_frames(detector):
    frames = [paste(plate(), 100 + 150 * i, 200, 1.0) for i in range(3)]
    batched = detector.detect_batch(frames)
    for frame, dets in zip(frames, batched):
        np.testing.assert_allclose(dets[0].landmarks, detector.detect(frame)[0].landmarks, atol=1e-2)


def test_no_face_no_detection(detector):
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert detector.detect(plate()) == []
    assert detector.detect(cv2.GaussianBlur(noise, (0, 0), 3)) == []


def test_model_comes_from_the_installed_wheel_and_providers_are_explicit(detector):
    assert bundled_centerface_path().is_file()
    assert "AzureExecutionProvider" not in default_providers()
    assert detector.providers[-1] == "CPUExecutionProvider"


def test_missing_or_foreign_model_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        CenterFaceDetector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot read"):
        CenterFaceDetector(bad)
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    other = tmp_path / "retinaface.onnx"
    onnx.save(helper.make_model(graph), str(other))
    with pytest.raises(WeightsError, match="CenterFace layout"):
        CenterFaceDetector(other)
