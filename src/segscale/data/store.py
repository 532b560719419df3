"""The slice store: one split of 2D slices on disk, readable in rank-sized shards.

Layout of a store directory (all written by :class:`SliceStoreWriter`)::

    images.npy     float16/float32, shape (N, H, W, C), memory-mappable
    labels.npy     uint8, shape (N, H, W), class indices after label mapping
    index.csv      one row per slice: patient, slice (index along the slicing axis), plus
                   augmentation columns for augmented stores
    manifest.json  parameters, sources with checksums, counts per class, environment;
                   written last, so a store without it is incomplete and is refused

Readers never load a whole array: ``np.load(mmap_mode="r")`` gives views that ranks
index with their own shard of row numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segscale.fileio import atomic_path, read_json, write_json

IMAGES = "images.npy"
LABELS = "labels.npy"
INDEX = "index.csv"
MANIFEST = "manifest.json"
STORE_FILES = (IMAGES, LABELS, INDEX, MANIFEST)


class SliceStoreWriter:
    """Fill a store of known size through memory maps at temporary names.

    Nothing carries a final name until :meth:`commit`, which renames the arrays and the
    index and then writes the manifest, so a crash leaves no store that looks complete.
    """

    def __init__(self, directory: str | os.PathLike, count: int, size: tuple[int, int],
                 channels: int, image_dtype: str = "float16") -> None:
        if count < 0:
            raise ValueError(f"store size must be >= 0, got {count}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in STORE_FILES:  # an older store here must not survive half-overwritten
            (self.directory / name).unlink(missing_ok=True)
        self._tmp = {name: self.directory / f".{name}.partial.npy" for name in (IMAGES, LABELS)}
        self.images = np.lib.format.open_memmap(self._tmp[IMAGES], mode="w+",
                                                dtype=np.dtype(image_dtype),
                                                shape=(count, *size, channels))
        self.labels = np.lib.format.open_memmap(self._tmp[LABELS], mode="w+", dtype=np.uint8,
                                                shape=(count, *size))

    def write(self, start: int, images: np.ndarray, labels: np.ndarray) -> None:
        """Put ``images`` (n, H, W, C) and ``labels`` (n, H, W) at rows ``start:start+n``."""
        stop = start + len(images)
        self.images[start:stop] = images
        self.labels[start:stop] = labels

    def commit(self, index: pd.DataFrame, manifest: dict) -> None:
        """Flush, rename everything into place and write the manifest last."""
        if len(index) != len(self.images):
            raise ValueError(f"index has {len(index)} rows for {len(self.images)} slices")
        self.images.flush()
        self.labels.flush()
        del self.images, self.labels
        for name, tmp in self._tmp.items():
            os.replace(tmp, self.directory / name)
        with atomic_path(self.directory / INDEX) as tmp:
            index.to_csv(tmp, index=False)
        write_json(self.directory / MANIFEST, manifest)

    def abort(self) -> None:
        """Remove the temporary arrays (call on failure)."""
        for attr in ("images", "labels"):
            if hasattr(self, attr):
                delattr(self, attr)
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class SliceStore:
    """A committed store opened read-only through memory maps."""

    directory: Path
    images: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    index: pd.DataFrame = field(repr=False)
    manifest: dict = field(repr=False)

    @classmethod
    def open(cls, directory: str | os.PathLike) -> SliceStore:
        """Open a store, refusing one that is incomplete or inconsistent.

        Raises:
            FileNotFoundError: a store file is missing (an interrupted writer leaves no manifest).
            ValueError: arrays and index disagree in length or shape.
        """
        directory = Path(directory)
        for name in STORE_FILES:
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory}: slice store is incomplete, {name} missing")
        images = np.load(directory / IMAGES, mmap_mode="r")
        labels = np.load(directory / LABELS, mmap_mode="r")
        index = pd.read_csv(directory / INDEX, dtype={"patient": str})  # "001" stays "001"
        if images.ndim != 4 or labels.shape != images.shape[:3] or len(index) != len(images):
            raise ValueError(f"{directory}: inconsistent store: images {images.shape}, "
                             f"labels {labels.shape}, index {len(index)} rows")
        return cls(directory, images, labels, index, read_json(directory / MANIFEST))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_classes(self) -> int:
        """Number of classes after label mapping, as recorded in the manifest."""
        return int(self.manifest["n_classes"])

    def shard(self, rank: int, size: int) -> np.ndarray:
        """Row numbers of rank ``rank`` out of ``size``: strided, all shards equally long.

        Synchronous data parallelism needs the same number of steps on every rank, so the
        ``len(self) % size`` trailing rows are left out of every shard.

        Raises:
            ValueError: ``rank`` outside ``[0, size)`` or fewer rows than ranks.
        """
        if not 0 <= rank < size:
            raise ValueError(f"rank {rank} outside [0, {size})")
        usable = len(self) - len(self) % size
        if usable == 0:
            raise ValueError(f"{self.directory}: {len(self)} slices cannot feed {size} ranks")
        return np.arange(rank, usable, size)

    def batches(self, rows: np.ndarray, batch_size: int,
                rng: np.random.Generator | None = None,
                drop_last: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (images float32, labels uint8) batches over ``rows``, shuffled by ``rng``.

        Each batch reads its rows in ascending order, which keeps memory-map reads sequential.
        """
        rows = np.asarray(rows)
        if rng is not None:
            rows = rng.permutation(rows)
        stop = len(rows) - len(rows) % batch_size if drop_last else len(rows)
        for start in range(0, stop, batch_size):
            chunk = np.sort(rows[start:start + batch_size])
            yield (np.asarray(self.images[chunk], dtype=np.float32),
                   np.asarray(self.labels[chunk]))
