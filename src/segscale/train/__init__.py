"""Training: one run of N ranks, from slice stores to a model and its records.

Owns the run (:mod:`.run`, named steps; :mod:`.cli`, ``python -m segscale.train``), how its
ranks train together (:mod:`.strategies`: Horovod, TensorFlow's collectives) and the local
launcher of the latter (:mod:`.spawn`), its
hyper-parameters (:mod:`.config`), the lr policies (:mod:`.schedules`), the Keras callbacks
(:mod:`.callbacks`), verified checkpoints (:mod:`.checkpoint`), the per-rank input stream
(:mod:`.batches`), run records (:mod:`.record`), the resource sampler (:mod:`.sampler`), the
launcher's facts (:mod:`.launch`) and the training-environment finder (:mod:`.env`).

Never imports evaluate, report or tune. TensorFlow and Horovod are imported inside the
functions that need them, so :mod:`.config`, :mod:`.schedules` and :mod:`.env` load in the
workflow's environment, which has no TensorFlow.
"""
