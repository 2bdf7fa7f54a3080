"""The QC report shows full frames as players show them: anamorphic pixels unsqueezed, a phone
clip stored on its side turned upright."""

from __future__ import annotations

import numpy as np

from dvface_plugin.report.build import FULL_WIDTH, _fit


def test_full_frames_are_shown_as_displayed():
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:6, :8] = 255  # a mark in the stored top-left corner
    assert _fit(frame).shape == (48, 64, 3)
    wide = _fit(frame, 2.0)  # 2:1 anamorphic: twice as wide
    assert wide.shape == (48, 128, 3) and wide[:6, :16].min() == 255 and wide[:, 20:].max() == 0
    turned = _fit(frame, 1.0, 3)  # stored on its side (rotation -90): a quarter turn clockwise
    assert turned.shape == (64, 48, 3) and turned[:8, -6:].min() == 255 and turned[:, :40].max() == 0


def test_large_frames_are_scaled_to_the_page_width_as_displayed():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    assert _fit(frame).shape == (1080 * FULL_WIDTH // 1920, FULL_WIDTH, 3)
    portrait = frame.transpose(1, 0, 2)  # stored upright: 1920 high
    assert _fit(portrait).shape == (round(1920 * FULL_WIDTH / 1080), FULL_WIDTH, 3)
    assert _fit(portrait, 1.0, 1).shape == (1080 * FULL_WIDTH // 1920, FULL_WIDTH, 3)  # shown on its side
