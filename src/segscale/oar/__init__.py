"""OAR 2.5 (Grid'5000's batch scheduler) for Snakemake's cluster-generic executor.

``profiles/oar`` makes snakemake-executor-plugin-cluster-generic call these small commands:

- :mod:`segscale.oar.submit` reads a Snakemake jobscript's properties (rule, wildcards,
  resources, log) and runs ``oarsub`` with the same placement as on Slurm; it prints the job
  id;
- :mod:`segscale.oar.status` turns ``oarstat -fJ -j ID`` into ``running``, ``success`` or
  ``failed``;
- :mod:`segscale.oar.cancel` runs ``oardel``;
- :mod:`segscale.oar.launch` starts a training's ranks inside a job: ``mpirun`` over OAR's
  remote shell ``oarsh``, one rank per GPU.

Standard library only: no snakemake, no TensorFlow. The parsing is in pure functions, tested
against recorded ``oarsub``/``oarstat`` outputs (tests/oar/data).
"""
