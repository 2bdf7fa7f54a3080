"""Exceptions users see. Each message names the problem and how to fix it."""


IO_EXIT_CODE = 4  # reading or writing failed in the system: a folder gone, no permission, disk full


def os_error_message(exc: OSError) -> str:
    """One line for a read or write the system refused: the file, what it said, what to check."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; check that the folder exists, is writable and has room"


class DVFaceError(Exception):
    """Base class for errors the CLI reports as a clean message instead of a traceback."""

    exit_code = 2


class WeightsError(DVFaceError):
    """Weights missing, corrupt, or not matching the model config."""

    exit_code = 3


class InputError(DVFaceError):
    """Input media or tensors that cannot be restored as given."""
