"""The window grid: coverage, fixed cross-fade weights, 4k+1 windows, no dependence on requests."""

import numpy as np
import pytest

from dvface_plugin.engine.windows import WindowGrid


def _coverage(grid: WindowGrid) -> tuple[np.ndarray, np.ndarray]:
    weight = np.zeros(grid.n_frames)
    count = np.zeros(grid.n_frames, dtype=int)
    for win in grid.windows:
        weight[win.start : win.stop] += grid.weights(win.index)
        count[win.start : win.stop] += 1
    return weight, count


@pytest.mark.parametrize("window,overlap,quantum", [(17, 4, 4), (33, 8, 4), (9, 2, 4), (5, 1, 4), (6, 2, 1), (4, 0, 1)])
def test_every_frame_covered_by_one_or_two_windows_with_weights_summing_to_one(window, overlap, quantum):
    for n in range(1, 130):
        grid = WindowGrid(n, window, overlap, quantum)
        weight, count = _coverage(grid)
        assert np.allclose(weight, 1.0), (n, weight)
        assert count.min() == 1 and count.max() <= 2, (n, count)
        assert grid.windows[0].start == 0 and grid.windows[-1].stop == n
        for win in grid.windows:
            assert win.length == min(window, n) or (win.length - 1) % quantum == 0
            assert win.length == window or n < window or win is grid.windows[-1]
            assert (grid.weights(win.index) > 0).all()


def test_regular_windows_start_on_the_stride_and_the_tail_is_anchored_to_the_end():
    grid = WindowGrid(45, 17, 4, 4)
    assert [(w.start, w.stop) for w in grid.windows] == [(0, 17), (13, 30), (26, 43), (36, 45)]
    # A tail of 45 - 39 = 6 frames is rounded up to 9 (4k+1), so the VAE never pads in time.
    assert grid.windows[-1].length == 9
    assert WindowGrid(43, 17, 4, 4).windows[-1].start == 26


def test_covering_and_spans_match_the_windows():
    grid = WindowGrid(100, 17, 4, 4)
    for f in range(100):
        expect = [w for w in grid.windows if w.start <= f < w.stop]
        assert list(grid.covering(f)) == expect
    assert grid.input_span(14, 16) == (0, 30)
    assert grid.input_span(50, 51) == (39, 56)
    with pytest.raises(IndexError):
        grid.covering(100)
    with pytest.raises(IndexError):
        grid.windows_for(5, 5)


@pytest.mark.parametrize("window,overlap,quantum", [(16, 4, 4), (17, 8, 4), (0, 0, 1), (17, -1, 4)])
def test_invalid_grids_are_refused(window, overlap, quantum):
    with pytest.raises(ValueError):
        WindowGrid(50, window, overlap, quantum)
    with pytest.raises(ValueError):
        WindowGrid(0, 17, 4, 4)
