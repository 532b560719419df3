"""Evaluation: a run's test prediction, scored at slice, volume and split level.

Owns prediction (:mod:`.predict`, the only module that imports TensorFlow, inside its
functions), the metrics of one confusion matrix (:mod:`.metrics`), surface distances
(:mod:`.surface`), test volumes from their slices (:mod:`.volumes`), scoring a store
(:mod:`.scoring`) and the evaluate CLI (:mod:`.cli`, ``python -m segscale.evaluate``).

Never imports train, report or tune; metrics and scoring need no TensorFlow.
"""
