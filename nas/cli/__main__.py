"""`python -m nas.cli ...` is `nas ...` (also how `torchrun -m nas.cli` starts training)."""

import sys

from nas.cli import main

sys.exit(main())
