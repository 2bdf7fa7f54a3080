"""Exceptions users see. Each message names the problem and how to fix it."""


class DVFaceError(Exception):
    """Base class for errors the CLI reports as a clean message instead of a traceback."""

    exit_code = 2


class WeightsError(DVFaceError):
    """Weights missing, corrupt, or not matching the model config."""

    exit_code = 3


class InputError(DVFaceError):
    """Input media or tensors that cannot be restored as given."""
