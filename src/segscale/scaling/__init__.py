"""Predicting scaling beyond the machine: an alpha-beta (latency-bandwidth) model of
synchronous data-parallel (Horovod) training, calibrated from what the workflow measures.

Owns:

- :mod:`.model`: the arithmetic (ring and hierarchical allreduce, tensor fusion, step and
  epoch times, speedup, efficiency), pure functions checkable by hand;
- :mod:`.archs`: parameter counts (gradient bytes) and FLOPs of the built-in U-Net and
  FCN-8s from their options, without TensorFlow;
- :mod:`.clusters`: cluster descriptions from the config's ``clusters:`` section;
- :mod:`.calibrate`: alpha and beta fitted to the allreduce microbenchmark
  (``segscale.train.allreduce_bench``), compute per step from the 1-GPU runs;
- :mod:`.predict` and :mod:`.cli`: the ``predicted_scaling.csv`` table and its figure.

Must not import: TensorFlow, Horovod, Keras, ``segscale.train``, ``segscale.models``,
``segscale.evaluate``, ``segscale.tune``, ``segscale.report`` or snakemake (checked by
``lint-imports``). It reads tables (``runs.csv``, ``scaling.csv``, the microbenchmark's
CSVs, the published values) and writes a table and a figure; it never trains.
"""
