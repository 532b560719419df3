"""Reporting: every run of a sweep read back into tidy tables, and figures drawn from them.

Owns reading run directories (:mod:`.runs`), computing the tables (:mod:`.tables`, ``python
-m segscale.report.tables``), the figures' look (:mod:`.style`), each figure (:mod:`.figures`,
``python -m segscale.report.figures``) and the published values drawn beside ours
(:mod:`.published`).

Never imports train or models, and no TensorFlow (an import-linter contract): figures are
redrawn from stored tables on a laptop.
"""
