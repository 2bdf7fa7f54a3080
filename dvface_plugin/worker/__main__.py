"""`python -m dvface_plugin.worker`: the same worker as `dvface serve`, without loading other commands."""

import sys

from ..commands.serve import main

sys.exit(main())
