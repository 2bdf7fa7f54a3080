"""Detail (Laplacian variance of the face centre) and identity (dlib descriptor distance) in
the metrics and in `dvface eval`, on synthetic media built here."""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from dvface_plugin import evaluate as E
from dvface_plugin import face_identity as F
from dvface_plugin import metrics as M
from dvface_plugin.commands import eval as eval_command
from dvface_plugin.media import MediaWriter

SIZE = 256  # dlib's HOG detector needs faces of about 80 px


def aligned_face(size: int = 512) -> np.ndarray:
    """The astronaut photo cropped around her face (face-centred, about 40% of the crop)."""
    return cv2.resize(data.astronaut()[14:238, 110:334], (size, size),
                      interpolation=cv2.INTER_CUBIC)


def sharpen(frame: np.ndarray) -> np.ndarray:
    soft = cv2.GaussianBlur(frame, (0, 0), 2).astype(np.float32)
    return np.clip(2.0 * frame - soft, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ident() -> F.FaceIdentity:
    try:
        return F.load_face_identity()
    except F.IdentityUnavailable as exc:
        pytest.skip(f"identity metric unavailable: {exc}")


# --------------------------------------------------------------------------- detail


def test_detail_falls_with_blur_and_rises_with_sharpening() -> None:
    face = aligned_face(SIZE)
    base = M.detail(face)
    assert M.detail(cv2.GaussianBlur(face, (0, 0), 1.5)) < 0.5 * base
    assert M.detail(sharpen(face)) > 1.5 * base


def test_detail_reads_only_the_centre_half() -> None:
    face = aligned_face(SIZE)
    q = SIZE // 4
    noisy_border = np.random.default_rng(0).integers(0, 256, face.shape, dtype=np.uint8)
    noisy_border[q:3 * q, q:3 * q] = face[q:3 * q, q:3 * q]
    assert M.detail(noisy_border) == M.detail(face)
    centre_changed = face.copy()
    centre_changed[SIZE // 2, SIZE // 2] = 255 - centre_changed[SIZE // 2, SIZE // 2]
    assert M.detail(centre_changed) != M.detail(face)


def test_detail_is_the_y_laplacian_variance() -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[8, 8] = 255  # one white pixel inside the 8x8 centre: Y 235 on 16
    lap = np.zeros((8, 8))  # the 3x3 kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    lap[4, 4], lap[3, 4], lap[5, 4], lap[4, 3], lap[4, 5] = -4 * 219, 219, 219, 219, 219
    assert M.detail(frame) == pytest.approx(lap.var())


def test_detail_ratio() -> None:
    assert M.detail_ratio([1.0, 3.0], [4.0, 4.0]) == 0.5
    assert math.isnan(M.detail_ratio([1.0], [0.0]))


def lattice(frame: np.ndarray, period: int = 3, amplitude: float = 12.0) -> np.ndarray:
    """The face with fine vertical and horizontal stripes painted on, as a generator does."""
    yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
    stripes = amplitude * (np.cos(2 * np.pi * xx / period) + np.cos(2 * np.pi * yy / period))
    return np.clip(frame + stripes[..., None], 0, 255).astype(np.uint8)


def test_stripes_rise_with_a_painted_lattice_and_not_with_sharpening() -> None:
    face = cv2.GaussianBlur(aligned_face(SIZE), (0, 0), 1.5)
    base = M.stripe_share(face)
    assert base < 0.3
    assert M.stripe_share(sharpen(face)) < 0.3  # real texture made crisper: detail up, stripes not
    painted = lattice(face)
    assert M.stripe_share(painted) > 0.6 and M.detail(painted) > 1.5 * M.detail(face)
    noise = np.clip(face + np.random.default_rng(0).normal(0, 6, face.shape), 0, 255).astype(np.uint8)
    assert M.stripe_share(noise) < 0.3  # isotropic grain spreads over every direction
    assert math.isnan(M.stripe_share(np.full((32, 32, 3), 90, np.uint8)))


# --------------------------------------------------------------------------- identity


def test_identity_distance_same_blurred_and_other(ident: F.FaceIdentity) -> None:
    face = aligned_face()
    box = ident.face_box(face)
    assert box is not None
    left, top, right, bottom = box
    assert 100 < left < right < 412 and 20 < top < bottom < 492
    ref = ident.descriptor(face, box)
    assert ref.shape == (128,)
    assert M.descriptor_distance(ident.descriptor(face, box), ref) == 0.0
    blurred = M.descriptor_distance(ident.descriptor(cv2.GaussianBlur(face, (0, 0), 2), box), ref)
    other_photo = cv2.cvtColor(cv2.resize(data.camera(), (512, 512)), cv2.COLOR_GRAY2RGB)
    other = M.descriptor_distance(ident.descriptor(other_photo, box), ref)
    assert 0.0 < blurred < F.SAME_PERSON < other
    assert ident.face_box(np.full((512, 512, 3), 128, np.uint8)) is None


def test_missing_dlib_is_a_one_line_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(F.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(F.IdentityUnavailable, match=r'pip install "dvface-plugin\[eval\]"'):
        F._models_dir()


# --------------------------------------------------------------------------- dvface eval


def write(path: Path, frames: list[np.ndarray]) -> Path:
    """Lossless (FFV1) so the codec does not blur the test."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with MediaWriter(path, fps=Fraction(24), width=SIZE, height=SIZE) as w:
        for frame in frames:
            w.write(frame)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """<root>/face/{GT,LQ,Sharp}.mkv: 9 frames (identity is read on frames 0 and 8)."""
    root = tmp_path_factory.mktemp("faces")
    gt = [np.roll(aligned_face(SIZE), t, axis=1) for t in range(9)]
    write(root / "face" / "GT.mkv", gt)
    write(root / "face" / "LQ.mkv", [cv2.GaussianBlur(f, (0, 0), 1.5) for f in gt])
    write(root / "face" / "Sharp.mkv", [sharpen(f) for f in gt])
    return root


class MeanColour:
    """A stand-in for dlib: the whole frame is the face, its descriptor the mean colour."""

    def face_box(self, frame: np.ndarray) -> F.Box:
        return 0, 0, frame.shape[1] - 1, frame.shape[0] - 1

    def descriptor(self, frame: np.ndarray, box: F.Box) -> np.ndarray:
        return frame.reshape(-1, 3).mean(0) / 255.0


def eval_json(capsys, *argv: str) -> dict[str, dict]:
    parser = argparse.ArgumentParser()
    eval_command.register(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv, "--offset-search", "0", "--json"])
    assert args.func(args) == 0
    return {r["method"]: r for r in json.loads(capsys.readouterr().out)}


def test_eval_json_paired_detail_and_identity(clip: Path, ident: F.FaceIdentity,
                                              capsys) -> None:
    folder = clip / "face"
    rows = eval_json(capsys, "--pred", str(folder / "LQ.mkv"), str(folder / "Sharp.mkv"),
                     "--gt", str(folder / "GT.mkv"))
    lq, sharp, gt = rows["LQ"], rows["Sharp"], rows["GT"]
    assert lq["detail"] < 0.5 < 1.5 < sharp["detail"]
    assert lq["detail"] == pytest.approx(lq["detail_var"] / gt["detail_var"])
    assert (gt["detail"], gt["identity"]) == (1.0, 0.0)
    assert all(0 < row["stripes"] < 0.5 for row in (lq, sharp, gt))
    assert 0.0 < lq["identity"] < F.SAME_PERSON and "identity" not in lq["omitted"]


def test_eval_without_dlib_omits_identity_with_the_reason(clip: Path, capsys,
                                                           monkeypatch) -> None:
    def absent() -> F.FaceIdentity:
        raise F.IdentityUnavailable(f"the identity metric needs dlib: {F.INSTALL_HINT}")

    monkeypatch.setattr(F, "load_face_identity", absent)
    folder = clip / "face"
    rows = eval_json(capsys, "--pred", str(folder / "LQ.mkv"), "--gt", str(folder / "GT.mkv"))
    assert rows["LQ"]["identity"] is None and rows["LQ"]["detail"] < 0.5
    assert 'pip install "dvface-plugin[eval]"' in rows["LQ"]["omitted"]["identity"]
    parser = argparse.ArgumentParser()
    eval_command.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--pred", str(folder / "LQ.mkv"),
                              "--gt", str(folder / "GT.mkv"), "--offset-search", "0"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "| detail |" in out and "| identity |" not in out
    assert 'identity omitted: the identity metric needs dlib: pip install' in out


def test_eval_no_reference_compares_with_the_input(clip: Path, tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    monkeypatch.setattr(F, "load_face_identity", MeanColour)
    rows = eval_json(capsys, "--pred", str(clip))  # GT is skipped; LQ is the input
    lq, sharp = rows["LQ"], rows["Sharp"]
    assert (lq["detail"], lq["identity"], lq["offset"]) == (1.0, 0.0, None)
    assert sharp["detail"] > 3 and sharp["offset"] == 0 and sharp["ref"] == lq["pred"]
    assert sharp["identity"] > 0 and sharp["psnr"] is None
    decoded = {m: list(E._read_frames(clip / "face" / f"{m}.mkv")) for m in ("LQ", "Sharp")}
    expected = np.mean([M.descriptor_distance(MeanColour().descriptor(decoded["Sharp"][t], ()),
                                              MeanColour().descriptor(decoded["LQ"][t], ()))
                        for t in (0, 8)])  # every 8th frame of 9
    assert sharp["identity"] == pytest.approx(expected)
    single = eval_json(capsys, "--pred", str(clip / "face" / "Sharp.mkv"),
                       "--ref", str(clip / "face" / "LQ.mkv"))
    assert single["Sharp"]["detail"] == pytest.approx(sharp["detail"])
    beside = eval_json(capsys, "--pred", str(clip / "face" / "Sharp.mkv"))  # LQ.mkv beside it
    assert beside["Sharp"]["detail"] == pytest.approx(sharp["detail"])
    alone = tmp_path / "Sharp.mkv"
    alone.write_bytes((clip / "face" / "Sharp.mkv").read_bytes())
    row = eval_json(capsys, "--pred", str(alone))[tmp_path.name]  # clip Sharp, method = folder
    assert row["detail"] is None and row["identity"] is None and row["detail_var"] > 0
    assert "--ref" in row["omitted"]["detail"]
