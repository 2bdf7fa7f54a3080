"""The DVFace network: its config, the Wan2.1 backbone, the dual-codebook prior, ASTF fusion, the
detail refiner, weights I/O and where model folders are found. Imports nothing of dvface_plugin
but `errors`. `config` and `folders` need no torch; `DVFace` (in `dvface`) loads it on first use.
"""

__all__ = ["DVFace", "DVFaceConfig"]


def __getattr__(name: str):
    if name == "DVFace":
        from .dvface import DVFace

        return DVFace
    if name == "DVFaceConfig":
        from .config import DVFaceConfig

        return DVFaceConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
