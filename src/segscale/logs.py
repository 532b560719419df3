"""One log format for every segscale CLI, so rule logs read alike side by side.

Only a CLI's ``main()`` configures logging; modules just ask ``logging.getLogger(__name__)``.
(``segscale.train`` adds the Horovod rank to each line on top of this.)
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int | str = logging.INFO) -> None:
    """Set up the root logger for a command-line run (level name or number)."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=FORMAT)
