"""The restorer interface every backend implements; imports no torch.

A backend turns one window of host crops into cached state (`encode`) and restored crops
(`decode`), with up to `streams` calls in flight, each on its own copy of the model. The engine
(`dvface_plugin.engine`) drives restorers window by window; this module knows nothing of
sessions or caches.
"""

from __future__ import annotations

import copy
import dataclasses
import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DVFaceError, InputError
from .monochrome import colour_of, keep_input_colour, monochrome_weight
from .pixels import to_model
from .stabilise import prefilter, stabilise

GRAIN_RADIUS = 2  # frames each side of the flow-guided average that measures a model's grain, when it has no prefilter

if TYPE_CHECKING:
    from ..model.config import DVFaceConfig


@dataclass(frozen=True)
class PriorState:
    """What a window's `prior_scale` changes leave untouched: its latent and prior features, the
    input's grain where the restorer puts it back (`TrackRestorer.with_grain`), and the input's
    colour on monochrome frames, which their restoration keeps (`runtime.monochrome`)."""

    latent: Any
    priors: Any
    grain: np.ndarray | None = None  # float16 (T, H, W, 3), model units
    mono: np.ndarray | None = None  # float32 (T,): how monochrome each input frame is, None if none is
    colour: np.ndarray | None = None  # float16 (T, H, W, 3): the input's colour_of, times `mono`

    @property
    def nbytes(self) -> int:
        extras = (self.grain, self.mono, self.colour)
        return self.latent.nbytes + self.priors.nbytes + sum(0 if a is None else a.nbytes for a in extras)


def check_grain(amount: float, name: str = "grain") -> float:
    """The grain amount as a float, refused (naming it as the caller's option `name`) unless in [0, 1]."""
    value = float(amount)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be in [0, 1] (0 = off, 1 = all of the input's grain), got {amount}")
    return value


class TrackRestorer(ABC):
    """Base of the backends: one or more copies of a model ("streams"), restoring aligned face tracks.

    Subclasses pass their model copies to `__init__`, set `backend`, `config`, `identity`
    (everything that changes outputs, for cache keys), `device`, `precision` and implement
    `_encode` / `_decode`, which get the copy to run on. A call waits here for a free copy, so
    hosts' threads may fetch, hash and blend concurrently, and up to `streams` model calls run at
    once. Why several: on a CPU two single-threaded calls side by side do more than one call on
    two threads (docs/benchmarks.md, "Several faces at once"); every copy gives the same output.
    """

    backend: str  # "torch" or "onnxruntime", as users name them
    config: DVFaceConfig
    identity: str
    device: Any  # where it runs: a torch.device, or an onnxruntime execution provider
    precision: str
    grain: float = 0.0  # how much of the input's grain goes back on the restored crops (`with_grain`)

    def __init__(self, models: Sequence[Any]) -> None:
        """models: one per stream, each running one call at a time."""
        if not models:
            raise ValueError("a restorer needs at least one model copy")
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # the copies no call is running on
        for model in models:
            self._free.put(model)
        self.models = tuple(models)  # the copies, for inspection; calls take them through `_stream`

    @property
    def streams(self) -> int:
        """Model calls that may run at once."""
        return len(self.models)

    @contextmanager
    def _stream(self) -> Iterator[Any]:
        model = self._free.get()
        try:
            yield model
        finally:
            self._free.put(model)

    def encode(self, crops: np.ndarray) -> PriorState:
        """Latent and prior features of one window of host crops (T, H, W, 3), prefiltered as the
        model was trained (`DVFaceConfig.prefilter`) before it is taken to a model copy; with
        `grain`, also what the prefilter takes out of each frame; on monochrome frames, their colour."""
        pixels = to_model(crops)
        steady = pixels
        if self.config.prefilter or self.grain:
            steady = prefilter(pixels, self.config.prefilter or GRAIN_RADIUS)
        with self._stream() as model:
            state = self._encode(model, steady if self.config.prefilter else pixels)
        if self.grain:
            state = dataclasses.replace(state, grain=(pixels - steady).astype(np.float16))
        colour = colour_of(pixels)
        mono = monochrome_weight(colour)
        if mono.any():
            state = dataclasses.replace(state, mono=mono, colour=(mono[:, None, None, None] * colour).astype(np.float16))
        return state

    def decode(self, state: PriorState, prior_scale: float = 1.0) -> np.ndarray:
        """Restored window as float32 (T, H, W, 3) in [-1, 1], from cached latent and priors."""
        with self._stream() as model:
            out = self._decode(model, state, prior_scale)
        if not np.isfinite(out).all():
            raise DVFaceError(f"the model produced NaN/Inf ({self.identity}); use fp32 precision")
        if self.config.stabilise:
            out = stabilise(out, self.config.stabilise)
        if state.grain is not None:  # after the stabilisation, which would average it away
            out = np.clip(out + self.grain * state.grain.astype(np.float32), -1.0, 1.0)
        if state.mono is not None:
            out = keep_input_colour(out, state.colour, state.mono)
        return out

    def with_stabilise(self, radius: int) -> TrackRestorer:
        """This restorer with the model config's `stabilise` overridden: frames each side averaged
        along the optical flow after restoring (0 = off). It shares the model copies; the
        radius is part of `identity`, so a shared window cache never mixes the two. The model's own
        radius returns this restorer: the same output, so the same cache entries."""
        if not (isinstance(radius, int) and radius >= 0):
            raise InputError(f"stabilise must be a whole number of frames >= 0 (0 = off), got {radius!r}")
        if radius == self.config.stabilise:
            return self
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, stabilise=radius)
        other.identity = f"{self.identity}|stabilise={radius}"
        return other

    def with_grain(self, amount: float) -> TrackRestorer:
        """This restorer putting `amount` (0 to 1) of the input's grain back on each restored crop,
        after the stabilisation: each input frame minus its flow-guided average with its neighbours
        (the model's input prefilter, or one of `GRAIN_RADIUS` frames each side where it has none).
        Film grain and sensor noise differ from frame to frame and average out; the face's own
        detail holds still and stays in the average. A restored face without the grain of the plate
        around it looks pasted on; this keeps the plate's texture on it. It shares the model copies
        and is part of `identity`, like `with_stabilise`."""
        amount = check_grain(amount)
        if amount == self.grain:
            return self
        other = copy.copy(self)
        other.grain = amount
        other.identity = f"{self.identity}|grain={amount!r}"
        return other

    @abstractmethod
    def _encode(self, model: Any, pixels: np.ndarray) -> PriorState:
        """pixels: float32 (T, H, W, 3) in [-1, 1]."""

    @abstractmethod
    def _decode(self, model: Any, state: PriorState, prior_scale: float) -> np.ndarray: ...
