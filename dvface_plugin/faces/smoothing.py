"""Temporal smoothing of landmark tracks: a One-Euro style filter made zero-phase.

Like One-Euro, the cut-off is low while a face is still (where jitter shows most) and rises with
its speed. Since the analysis pass has the whole clip, the causal filter's lag is removed by
averaging it with the same filter run backwards in time (a symmetric response: steady motion
passes with no lag), and the speed that drives the cut-off is measured on a zero-phase smoothed
centroid, so noise is not mistaken for motion and the filter opens up already as a face starts to
move. The ends are padded by point reflection, which continues a linear motion exactly, so the
first and last frames do not lag either. Cut-offs are in Hz, so settings mean the same at 24, 25
or 60 fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class SmoothingSettings:
    min_cutoff: float = 0.6  # Hz; cut-off while the face is still
    beta: float = 1.5  # extra Hz per face size per second of motion
    d_cutoff: float = 1.0  # Hz; smoothing of the centroid the speed is measured on
    pad_seconds: float = 0.5  # reflected padding at each end of a track

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Smoothing weight of a one-pole low-pass at `cutoff` Hz, pole-matched to the frame rate.

    Matching the pole (rather than One-Euro's usual 1/(1 + tau*fps)) makes the decay the same in
    seconds at any frame rate.
    """
    return 1.0 - np.exp(-2.0 * np.pi * cutoff / fps)


def _ema(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Causal exponential smoothing over axis 0 with a per-frame weight."""
    out = np.empty_like(x)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = out[i - 1] + alpha[i] * (x[i] - out[i - 1])
    return out


def _zero_phase(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return 0.5 * (_ema(x, alpha) + _ema(x[::-1], alpha[::-1])[::-1])


def _cutoffs(x: np.ndarray, fps: float, face_size: float, s: SmoothingSettings) -> np.ndarray:
    """One-Euro cut-off per frame, from the speed of the landmarks' centroid in face sizes/second.

    The speed is taken from a zero-phase smoothed centroid, so landmark noise does not pass for
    motion and the filter opens up symmetrically around the moment a face starts moving. One
    cut-off for all points keeps the face shape rigid.
    """
    centroid = x.mean(1)
    smooth = _zero_phase(centroid, np.full(len(x), _alpha(s.d_cutoff, fps)))
    speed = np.linalg.norm(np.gradient(smooth, axis=0), axis=1) * fps / face_size
    return s.min_cutoff + s.beta * speed


def smooth_points(points: np.ndarray, fps: float, settings: SmoothingSettings | None = None) -> np.ndarray:
    """Zero-phase smoothed copy of (T, K, 2) points sampled at `fps`."""
    s = settings or SmoothingSettings()
    if fps <= 0 or not np.isfinite(fps):
        raise InputError(f"fps must be a positive number, got {fps}")
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 2:
        raise InputError(f"points to smooth must be (T, K, 2), got {x.shape}")
    if len(x) < 3:
        return x.copy()
    centred = x - x.mean(1, keepdims=True)
    face_size = max(float(np.median(np.sqrt((centred**2).sum(2).mean(1)))) * 2.0, 1.0)
    pad = min(len(x) - 1, max(1, round(s.pad_seconds * fps)))
    head = 2 * x[0] - x[pad:0:-1]
    tail = 2 * x[-1] - x[-2 : -pad - 2 : -1]
    padded = np.concatenate([head, x, tail])
    alpha = _alpha(_cutoffs(padded, fps, face_size, s), fps)
    return _zero_phase(padded, alpha)[pad : pad + len(x)]
