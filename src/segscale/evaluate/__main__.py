"""``python -m segscale.evaluate``: see :mod:`segscale.evaluate.cli`."""

import sys

from segscale.evaluate.cli import main

sys.exit(main())
