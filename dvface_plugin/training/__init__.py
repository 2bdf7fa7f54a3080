"""Training: data, degradation on the fly, the five stages, the loop that runs one and the plan
that runs them all. A pipeline over `model` (and `degrade`, `metrics`); the commands are in `commands`.
"""

STAGES = ("vae", "codebook", "predict", "restore", "refine")  # here, so `dvface train --help` needs no torch
