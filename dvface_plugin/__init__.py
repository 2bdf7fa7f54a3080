"""DVFace: temporally stable video face restoration, shared core of the VapourSynth and Nuke plugins."""

__version__ = "0.1.0"
