"""Nuke startup (init.py, also run by `nuke -t` and farm renders): make `dvface_plugin` importable.

Put this folder on NUKE_PATH (or call nuke.pluginAddPath on it). The `dvface_plugin` package (the
worker's client, standard library only) is taken from $DVFACE_ROOT, else from the repository this
folder sits in; the worker itself runs in its own Python environment, $DVFACE_PYTHON (README.md).
"""

import os
import sys

_ROOT = os.environ.get("DVFACE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
