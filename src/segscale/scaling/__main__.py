import sys

from segscale.scaling.cli import main

sys.exit(main())
