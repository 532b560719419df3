"""Tuning: the GreScale guideline loop of the thesis (section 6.3.3, fig. 6.3).

Owns the guideline's state and pure decision rules (:mod:`.guideline`) and the tune step
(:mod:`.step`, ``python -m segscale.tune.step``) that the workflow's checkpoint loop runs
between trainings. Reads hyper-parameters through :mod:`segscale.train.config` only; never
imports TensorFlow, models, evaluate or report.
"""
