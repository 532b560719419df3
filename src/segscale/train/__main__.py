"""``python -m segscale.train``: see :mod:`segscale.train.cli`."""

import sys

from segscale.train.cli import main

sys.exit(main())
