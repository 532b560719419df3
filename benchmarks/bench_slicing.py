"""Slicing stage cost per volume against its floor, just reading the same NIfTI volume.

Both are timed side by side in one run, alternating volume by volume, so machine noise hits
them alike; the ratio (slice / load) is the number to quote, printed last as
``slicing_vs_read: <ratio>`` (goal <= 1.5). Volumes are BRATS-sized by
default (240 x 240 x 155 x 4, int16, gzipped) and made by the demo generator's recipe.

    python benchmarks/bench_slicing.py [--volumes 3] [--repeats 3] [--shape 240 240 155]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from segscale.data.build import VolumeJob, process_volume
from segscale.data.demo import SPECS, DemoSpec, brats_case, demo_affine
from segscale.data.msd import load_volume
from segscale.data.params import DatasetParams
from segscale.fileio import sha256


def make_volumes(folder: Path, n: int, shape: tuple[int, int, int]) -> list[VolumeJob]:
    spec = DemoSpec(**{**SPECS["brats"].__dict__, "shape": shape, "spacing": (1.0, 1.0, 1.0)})
    jobs = []
    for i in range(n):
        image, label = brats_case(spec, np.random.default_rng(i))
        paths = [folder / f"img{i}.nii.gz", folder / f"lab{i}.nii.gz"]
        for path, data in zip(paths, (image, label)):
            nib.save(nib.Nifti1Image(data, demo_affine(spec.spacing, i)), str(path))
        jobs.append(VolumeJob(f"p{i}", *paths, (sha256(paths[0]), sha256(paths[1]))))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155))
    args = parser.parse_args()
    params = DatasetParams.from_mapping("bench", {
        "root": ".", "channels": [1], "label_map": [0, 1, 1, 1], "size": [128, 128],
        "slices": {"count": 70, "select": "labelled", "margin": 2}})
    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_volumes(Path(tmp), args.volumes, tuple(args.shape))
        load_s, slice_s = [], []
        for _ in range(args.repeats):
            for job in jobs:
                t0 = time.perf_counter()
                load_volume(job.image)
                load_volume(job.label)
                t1 = time.perf_counter()
                out = process_volume(job, params, "train")
                t2 = time.perf_counter()
                load_s.append(t1 - t0)
                slice_s.append(t2 - t1)
    load, sliced = statistics.median(load_s), statistics.median(slice_s)
    print(f"volume {tuple(args.shape)} x 4 channels, {len(out['indices'])} slices -> 128x128, "
          f"{args.volumes} volumes x {args.repeats} repeats (medians)")
    print(f"  load image+label (floor): {load * 1000:8.1f} ms/volume")
    print(f"  full slicing step:        {sliced * 1000:8.1f} ms/volume")
    print(f"  ratio slicing / load:     {sliced / load:8.2f}   (goal <= 1.5)")
    print(f"slicing_vs_read: {sliced / load:.2f}")


if __name__ == "__main__":
    main()
