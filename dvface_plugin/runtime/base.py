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
from .pixels import to_model
from .stabilise import prefilter, stabilise

if TYPE_CHECKING:
    from ..model.config import DVFaceConfig


@dataclass(frozen=True)
class PriorState:
    """What a window's `prior_scale` changes leave untouched: its latent and prior features."""

    latent: Any
    priors: Any

    @property
    def nbytes(self) -> int:
        return self.latent.nbytes + self.priors.nbytes


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
        model was trained (`DVFaceConfig.prefilter`) before it is taken to a model copy."""
        pixels = to_model(crops)
        if self.config.prefilter:
            pixels = prefilter(pixels, self.config.prefilter)
        with self._stream() as model:
            return self._encode(model, pixels)

    def decode(self, state: PriorState, prior_scale: float = 1.0) -> np.ndarray:
        """Restored window as float32 (T, H, W, 3) in [-1, 1], from cached latent and priors."""
        with self._stream() as model:
            out = self._decode(model, state, prior_scale)
        if not np.isfinite(out).all():
            raise DVFaceError(f"the model produced NaN/Inf ({self.identity}); use fp32 precision")
        return stabilise(out, self.config.stabilise) if self.config.stabilise else out

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

    @abstractmethod
    def _encode(self, model: Any, pixels: np.ndarray) -> PriorState:
        """pixels: float32 (T, H, W, 3) in [-1, 1]."""

    @abstractmethod
    def _decode(self, model: Any, state: PriorState, prior_scale: float) -> np.ndarray: ...
