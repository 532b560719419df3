"""Typed, validated parameters of the data stage (one dataset's section of the config).

The workflow validates the config against its JSON schema first; these dataclasses check
again so the CLIs are safe to call by hand, and they are what manifests record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _reject_unknown(cls: type, mapping: dict, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")


@dataclass(frozen=True)
class SliceParams:
    """Which 2D slices a volume gives: ``axis`` for every split; ``count``, ``select`` and
    ``margin`` for train and val only (the test store holds every plane along ``axis``, see
    :func:`segscale.data.slicing.choose_planes`: a training/validation device, never a
    choice of which test planes are scored).

    ``select``: ``even`` spreads ``count`` slices evenly over the whole volume; ``labelled``
    spreads them over the labelled extent widened by ``margin`` slices on each side (a volume
    with an empty label falls back to ``even``).
    """

    axis: int = 2
    count: int = 70
    select: str = "labelled"
    margin: int = 0

    def __post_init__(self) -> None:
        if self.axis not in (0, 1, 2):
            raise ValueError(f"slices.axis must be 0, 1 or 2, got {self.axis}")
        if self.count < 1:
            raise ValueError(f"slices.count must be >= 1, got {self.count}")
        if self.select not in ("even", "labelled"):
            raise ValueError(f"slices.select must be 'even' or 'labelled', got {self.select!r}")
        if self.margin < 0:
            raise ValueError(f"slices.margin must be >= 0, got {self.margin}")


@dataclass(frozen=True)
class NormaliseParams:
    """Per-volume, per-channel intensity normalisation.

    ``method``: ``zscore`` ((x - mean) / std over ``mask`` voxels), ``minmax`` (to [0, 1]) or
    ``none``. ``mask``: ``nonzero`` (the body: MSD volumes are zero outside it) or ``all``.
    ``clip_percentiles``: clip to these percentiles of the mask voxels first (null: no clip).
    """

    method: str = "zscore"
    mask: str = "nonzero"
    clip_percentiles: tuple[float, float] | None = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.method not in ("zscore", "minmax", "none"):
            raise ValueError(f"normalise.method must be zscore, minmax or none, "
                             f"got {self.method!r}")
        if self.mask not in ("nonzero", "all"):
            raise ValueError(f"normalise.mask must be nonzero or all, got {self.mask!r}")
        if self.clip_percentiles is not None:
            lo, hi = self.clip_percentiles
            if not 0 <= lo < hi <= 100:
                raise ValueError(f"normalise.clip_percentiles must satisfy 0 <= lo < hi <= 100, "
                                 f"got {list(self.clip_percentiles)}")
            object.__setattr__(self, "clip_percentiles", (float(lo), float(hi)))


@dataclass(frozen=True)
class SplitParams:
    """Fractions of patients (volumes) per split; never of slices."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        ratios = (self.train, self.val, self.test)
        if min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6 or self.train <= 0:
            raise ValueError(f"split ratios must be >= 0, train > 0, and sum to 1, got "
                             f"train={self.train}, val={self.val}, test={self.test}")


AUGMENT_TRANSLATIONS = ("one_axis", "both_axes")
AUGMENT_SHIFT_SIGNS = ("positive", "both")


@dataclass(frozen=True)
class AugmentParams:
    """Random affine augmentation of the training split (thesis table 2.1 defaults).

    ``target``: number of training images after augmentation, originals included (0 or
    fewer than the originals: no augmentation). ``rotation``: max |angle| in degrees.
    ``zoom``: [min, max] scale. ``shift``: max translation as a fraction of the image side
    along that axis (0.05 of 512 px is the thesis's 25.6 px; 3.2 px at 64).
    ``translation``: ``one_axis`` (table 2.1: each image is shifted along x or along y, the
    axis drawn at random) or ``both_axes`` (an independent shift along each axis).
    ``shift_sign``: ``positive`` (table 2.1 as written: ``x + shift_range``, shift_range in
    [0, 25.6]) or ``both`` (the distance in [-bound, bound]).
    """

    target: int = 35000
    rotation: float = 45.0
    zoom: tuple[float, float] = (0.8, 1.2)
    shift: float = 0.05
    translation: str = "one_axis"
    shift_sign: str = "positive"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target < 0:
            raise ValueError(f"augment.target must be >= 0, got {self.target}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"augment.rotation must be in [0, 180], got {self.rotation}")
        lo, hi = self.zoom
        if not 0 < lo <= hi:
            raise ValueError(f"augment.zoom must satisfy 0 < min <= max, got {list(self.zoom)}")
        object.__setattr__(self, "zoom", (float(lo), float(hi)))
        if not 0 <= self.shift <= 0.5:
            raise ValueError(f"augment.shift must be in [0, 0.5], got {self.shift}")
        if self.translation not in AUGMENT_TRANSLATIONS:
            raise ValueError(f"augment.translation must be one of {list(AUGMENT_TRANSLATIONS)}, "
                             f"got {self.translation!r}")
        if self.shift_sign not in AUGMENT_SHIFT_SIGNS:
            raise ValueError(f"augment.shift_sign must be one of {list(AUGMENT_SHIFT_SIGNS)}, "
                             f"got {self.shift_sign!r}")


@dataclass(frozen=True)
class DatasetParams:
    """Everything that turns one raw MSD task into slice stores."""

    name: str
    root: str
    channels: tuple[int, ...] = (0,)
    label_map: tuple[int, ...] = (0, 1)
    class_names: tuple[str, ...] = ()
    size: tuple[int, int] = (128, 128)
    image_dtype: str = "float16"
    slices: SliceParams = field(default_factory=SliceParams)
    normalise: NormaliseParams = field(default_factory=NormaliseParams)
    split: SplitParams = field(default_factory=SplitParams)
    augment: AugmentParams = field(default_factory=AugmentParams)

    def __post_init__(self) -> None:
        channels = self.channels
        if not channels or min(channels) < 0 or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct indices >= 0, got {list(self.channels)}")
        if not self.label_map or min(self.label_map) < 0 or self.label_map[0] != 0:
            raise ValueError(f"label_map must map raw label 0 (background) to class 0 and use "
                             f"classes >= 0, got {list(self.label_map)}")
        classes = sorted(set(self.label_map))
        if classes != list(range(len(classes))):
            raise ValueError(f"label_map must use consecutive classes 0..K-1, "
                             f"got {list(self.label_map)}")
        if self.class_names and len(self.class_names) != len(classes):
            raise ValueError(f"class_names has {len(self.class_names)} names for "
                             f"{len(classes)} classes")
        if len(self.size) != 2 or min(self.size) < 8:
            raise ValueError(f"size must be [height, width] >= 8, got {list(self.size)}")
        if self.image_dtype not in ("float16", "float32"):
            raise ValueError(f"image_dtype must be float16 or float32, got {self.image_dtype!r}")

    @property
    def n_classes(self) -> int:
        return max(self.label_map) + 1

    @property
    def names_of_classes(self) -> list[str]:
        return list(self.class_names) or [f"class{i}" for i in range(self.n_classes)]

    @classmethod
    def from_mapping(cls, name: str, mapping: dict[str, Any]) -> DatasetParams:
        """Build from the config section ``datasets.<name>``; keys unknown here are refused.

        Keys that belong to other stages (``demo``, ``lr``) are ignored.
        """
        where = f"datasets.{name}"
        mapping = {k: v for k, v in mapping.items() if k not in ("demo", "lr")}
        _reject_unknown(cls, {**mapping, "name": name}, where)
        nested = {"slices": SliceParams, "normalise": NormaliseParams, "split": SplitParams,
                  "augment": AugmentParams}
        kwargs: dict[str, Any] = {"name": name}
        for key, value in mapping.items():
            if key in nested:
                _reject_unknown(nested[key], value, f"{where}.{key}")
                value = nested[key](**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in value.items()})
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        if "root" not in kwargs:
            raise ValueError(f"{where}: 'root' (the MSD task folder) is required")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for manifests."""
        return asdict(self)
