"""The data stage: raw MSD volumes to validated, provenance-stamped 2D slice stores.

Owns reading MSD tasks (:mod:`.msd`), validating them (:mod:`.validate`), the patient split
(:mod:`.split`), slicing (:mod:`.slicing`), the slice store (:mod:`.store`) and its build
(:mod:`.build`), augmentation (:mod:`.augment`), the dataset parameters (:mod:`.params`) and
the generated demo tasks (:mod:`.demo`).

Imports nothing of train, models, evaluate, report or tune, and no TensorFlow (an
import-linter contract).
"""
