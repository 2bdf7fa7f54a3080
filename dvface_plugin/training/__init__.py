"""Training: data, degradation on the fly, the five stages, the loop that runs one and the plan
that runs them all. A pipeline over `model` (and `degrade`, `metrics`, the runtime's pixel conversion and input
prefilter, so training sees what inference feeds the model); the commands are in `commands`.
"""

# here, so `dvface train --help` needs no torch
STAGES = ("vae", "codebook", "predict", "restore", "refine")
PRECISIONS = ("fp32", "bf16")
