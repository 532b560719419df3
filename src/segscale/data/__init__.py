"""The data stage: raw MSD volumes to a 2D slice store. Needs no TensorFlow."""
