"""``python -m segscale.scaling``: predict scaling beyond the machine (segscale.scaling.cli)."""

import sys

from segscale.scaling.cli import main

sys.exit(main())
