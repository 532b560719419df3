"""A corpus of defective MSD tasks, each a valid demo task broken in exactly one way.

Every defect is a function ``defect(root) -> (file fragment, cause fragment)``: it breaks the
freshly generated task at ``root`` (``segscale.data.demo.generate(KIND, root, n_train=3,
n_test=1)``: ``la_001``..``la_003`` in ``imagesTr``/``labelsTr``, ``la_004`` in ``imagesTs``;
BRATS defects use ``BRATS_001``..) and returns what the refusal must name: a fragment of the
offending file's path and a fragment of the cause. Think fuzzer: JSON, paths, gzip, NIfTI
headers, geometry, values. Nothing here depends on permissions (the tests may run as root).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

Defect = Callable[[Path], tuple[str, str]]

#: name -> (demo kind, defect)
DEFECTS: dict[str, tuple[str, Defect]] = {}


def defect(kind: str = "heart") -> Callable[[Defect], Defect]:
    def register(func: Defect) -> Defect:
        DEFECTS[func.__name__] = (kind, func)
        return func
    return register


def make_task(kind: str, root: Path) -> Path:
    """The valid base every defect starts from."""
    from segscale.data.demo import generate

    generate(kind, root, n_train=3, n_test=1, seed=7)
    return root


# ---- helpers ------------------------------------------------------------------------------

def _meta(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def _save_meta(root: Path, meta) -> None:
    (root / "dataset.json").write_text(json.dumps(meta, indent=4))


def _edit_meta(root: Path, edit: Callable[[dict], None]) -> None:
    meta = _meta(root)
    edit(meta)
    _save_meta(root, meta)


def _data(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def _rewrite(path: Path, data: np.ndarray | None = None,
             affine: np.ndarray | None = None) -> None:
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(_data(path) if data is None else data,
                             img.affine if affine is None else affine), str(path))


def _raw(path: Path) -> bytearray:
    return bytearray(gzip.decompress(path.read_bytes()))


def _put_raw(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(bytes(raw)))


def _image(root: Path, n: int = 1) -> Path:
    return root / "imagesTr" / f"la_{n:03d}.nii.gz"


def _label(root: Path, n: int = 1) -> Path:
    return root / "labelsTr" / f"la_{n:03d}.nii.gz"


# ---- gzip ---------------------------------------------------------------------------------

@defect()
def truncated_gzip(root):
    path = _image(root, 1)
    path.write_bytes(path.read_bytes()[:4000])
    return "imagesTr/la_001.nii.gz", "truncated or corrupt gzip"


@defect()
def not_gzip(root):
    path = _image(root, 2)
    path.write_bytes(bytes(_raw(path)))  # plain .nii bytes under a .nii.gz name
    return "imagesTr/la_002.nii.gz", "not gzip-compressed"


@defect()
def gzip_of_garbage(root):
    _label(root, 3).write_bytes(gzip.compress(b"garbage, not an image " * 200))
    return "labelsTr/la_003.nii.gz", "not a NIfTI file"


@defect()
def gzip_magic_then_garbage(root):
    _image(root, 1).write_bytes(b"\x1f\x8b" + b"not gzip at all" * 50)
    return "imagesTr/la_001.nii.gz", "truncated or corrupt gzip"


@defect()
def empty_file(root):
    _label(root, 2).write_bytes(b"")
    return "labelsTr/la_002.nii.gz", "empty file (0 bytes)"


# ---- NIfTI headers ------------------------------------------------------------------------

@defect()
def header_cut_short(root):
    path = _image(root, 3)
    _put_raw(path, _raw(path)[:200])
    return "imagesTr/la_003.nii.gz", "truncated NIfTI header"


@defect()
def wrong_sizeof_hdr(root):
    path = _image(root, 1)
    raw = _raw(path)
    struct.pack_into("<i", raw, 0, 999)
    _put_raw(path, raw)
    return "imagesTr/la_001.nii.gz", "sizeof_hdr 999"


@defect()
def wrong_magic(root):
    path = _label(root, 1)
    raw = _raw(path)
    raw[344:348] = b"xx1\0"
    _put_raw(path, raw)
    return "labelsTr/la_001.nii.gz", "invalid NIfTI header (magic"


@defect()
def unknown_datatype(root):
    path = _image(root, 2)
    raw = _raw(path)
    struct.pack_into("<h", raw, 70, 99)
    _put_raw(path, raw)
    return "imagesTr/la_002.nii.gz", "unknown datatype code 99"


@defect()
def negative_dim(root):
    path = _image(root, 3)
    raw = _raw(path)
    struct.pack_into("<h", raw, 42, -5)
    _put_raw(path, raw)
    return "imagesTr/la_003.nii.gz", "invalid NIfTI header (dim"


@defect()
def voxel_data_cut_short(root):
    path = _label(root, 3)
    raw = _raw(path)
    _put_raw(path, raw[: len(raw) // 2])
    return "labelsTr/la_003.nii.gz", "truncated voxel data"


@defect()
def vox_offset_past_end(root):
    path = _image(root, 1)
    raw = _raw(path)
    struct.pack_into("<f", raw, 108, 1e7)
    _put_raw(path, raw)
    return "imagesTr/la_001.nii.gz", "truncated voxel data"


@defect()
def singular_affine(root):
    for path in (_image(root, 2), _label(root, 2)):  # same grid, but a degenerate one
        raw = _raw(path)
        struct.pack_into("<h", raw, 252, 0)  # no qform: the (zeroed) sform rules
        struct.pack_into("<4f", raw, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z
        _put_raw(path, raw)
    return "imagesTr/la_002.nii.gz", "singular affine"


# ---- geometry and dimensionality -----------------------------------------------------------

@defect()
def label_shape_mismatch(root):
    _rewrite(_label(root, 2), data=_data(_label(root, 2))[:, :, :-1])
    return "labelsTr/la_002.nii.gz", "differs from image shape"


@defect()
def label_affine_mismatch(root):
    _rewrite(_label(root, 3), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    return "labelsTr/la_003.nii.gz", "label affine differs"


@defect()
def image_2d(root):
    _rewrite(_image(root, 1), data=_data(_image(root, 1))[:, :, 0])
    return "imagesTr/la_001.nii.gz", "image is 2D, expected 3D"


@defect()
def image_5d(root):
    data = _data(_image(root, 2))
    _rewrite(_image(root, 2), data=np.stack([data, data], -1)[:, :, :, None, :])
    return "imagesTr/la_002.nii.gz", "image is 5D"


@defect()
def label_4d(root):
    data = _data(_label(root, 1))
    _rewrite(_label(root, 1), data=np.stack([data, data], -1))
    return "labelsTr/la_001.nii.gz", "label is 4D, expected 3D"


@defect("brats")
def channels_differ_from_modalities(root):
    path = root / "imagesTr" / "BRATS_002.nii.gz"
    _rewrite(path, data=_data(path)[..., :3])
    return "imagesTr/BRATS_002.nii.gz", "3 channels, dataset.json declares 4 modalities"


@defect()
def modalities_claim_two_channels(root):
    _edit_meta(root, lambda m: m.update(modality={"0": "MRI", "1": "CT"}))
    return "imagesTr/la_001.nii.gz", "image is 3D, expected 4D for 2 modalities"


@defect()
def test_image_wrong_dimensionality(root):
    path = root / "imagesTs" / "la_004.nii.gz"
    _rewrite(path, data=_data(path)[:, :, 0])
    return "imagesTs/la_004.nii.gz", "image is 2D"


# ---- values -------------------------------------------------------------------------------

@defect()
def nan_intensities(root):
    data = _data(_image(root, 2)).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[2, 2, 3] = np.inf
    _rewrite(_image(root, 2), data=data)
    return "imagesTr/la_002.nii.gz", "2 NaN/inf intensities"


@defect()
def inf_in_test_image(root):
    path = root / "imagesTs" / "la_004.nii.gz"
    data = _data(path).astype(np.float32)
    data[0, 0, 0] = -np.inf
    _rewrite(path, data=data)
    return "imagesTs/la_004.nii.gz", "1 NaN/inf intensities"


@defect()
def complex_intensities(root):
    _rewrite(_image(root, 3), data=_data(_image(root, 3)).astype(np.complex64))
    return "imagesTr/la_003.nii.gz", "unsupported voxel type complex64"


@defect()
def undeclared_label_value(root):
    data = _data(_label(root, 1)).copy()
    data[0, 0, 0] = 7
    _rewrite(_label(root, 1), data=data)
    return "labelsTr/la_001.nii.gz", "label values [7] not declared"


@defect()
def negative_label_value(root):
    data = _data(_label(root, 2)).astype(np.int16)
    data[0, 0, 0] = -1
    _rewrite(_label(root, 2), data=data)
    return "labelsTr/la_002.nii.gz", "label values [-1] not declared"


@defect()
def fractional_label_values(root):
    data = _data(_label(root, 3)).astype(np.float32)
    data[data == 1] = 0.5
    _rewrite(_label(root, 3), data=data)
    return "labelsTr/la_003.nii.gz", "non-integer label values"


@defect()
def nan_label_values(root):
    data = _data(_label(root, 1)).astype(np.float32)
    data[0, 0, :3] = np.nan
    _rewrite(_label(root, 1), data=data)
    return "labelsTr/la_001.nii.gz", "3 NaN/inf label values"


@defect()
def all_labels_background(root):
    for n in (1, 2, 3):
        _rewrite(_label(root, n), data=np.zeros_like(_data(_label(root, n))))
    return "dataset.json", "no foreground class in any training label"


# ---- files and paths ----------------------------------------------------------------------

@defect()
def missing_label_file(root):
    _label(root, 2).unlink()
    return "labelsTr/la_002.nii.gz", "file not found"


@defect()
def missing_test_image(root):
    (root / "imagesTs" / "la_004.nii.gz").unlink()
    return "imagesTs/la_004.nii.gz", "file not found"


@defect()
def label_is_a_directory(root):
    _label(root, 1).unlink()
    _label(root, 1).mkdir()
    return "labelsTr/la_001.nii.gz", "is a directory"


@defect()
def broken_symlink(root):
    _image(root, 3).unlink()
    _image(root, 3).symlink_to(root / "imagesTr" / "gone.nii.gz")
    return "imagesTr/la_003.nii.gz", "broken symbolic link"


@defect()
def symlink_out_of_the_task(root):
    outside = root.parent / "elsewhere.nii.gz"
    shutil.move(_label(root, 1), outside)
    _label(root, 1).symlink_to(outside)
    return "labelsTr/la_001.nii.gz", "leads out of the task folder through a symbolic link"


@defect()
def dotdot_path_escapes(root):
    shutil.copy(_image(root, 2), root.parent / "outside.nii.gz")
    _edit_meta(root, lambda m: m["training"][1].update(image="./imagesTr/../../outside.nii.gz"))
    return "outside.nii.gz", "leaves the task folder ('..' component)"


@defect()
def absolute_path(root):
    target = str(_image(root, 1).resolve())
    _edit_meta(root, lambda m: m["training"][0].update(image=target))
    return "imagesTr/la_001.nii.gz", "is absolute"


@defect()
def unlisted_volume_in_imagesTr(root):
    shutil.copy(_image(root, 1), root / "imagesTr" / "la_099.nii.gz")
    return "imagesTr", "holds 4 volume files, dataset.json numTraining is 3 (not listed: la_099"


@defect()
def duplicate_training_entry(root):
    def edit(meta):
        meta["training"][2] = dict(meta["training"][0])
    _edit_meta(root, edit)
    return "imagesTr/la_001.nii.gz", "listed more than once"


@defect()
def label_listed_as_its_own_image(root):
    _edit_meta(root, lambda m: m["training"][1].update(image=m["training"][1]["label"]))
    return "labelsTr/la_002.nii.gz", "listed more than once"


@defect()
def unreadable_other_format(root):
    (root / "imagesTr" / "la_001.mha").write_text("ObjectType = Image\nNDims = 3\n")
    _image(root, 1).unlink()
    _edit_meta(root, lambda m: m["training"][0].update(image="./imagesTr/la_001.mha"))
    return "imagesTr/la_001.mha", "cannot read volume"


# ---- dataset.json -------------------------------------------------------------------------

@defect()
def dataset_json_missing(root):
    (root / "dataset.json").unlink()
    return "dataset.json", "not found"


@defect()
def invalid_json(root):
    (root / "dataset.json").write_text('{\n    "name": "x",\n    oops\n}\n')
    return "dataset.json", "not valid JSON (Expecting property name enclosed in double quotes " \
                           "at line 3"


@defect()
def json_not_utf8(root):
    (root / "dataset.json").write_bytes(b'{"name": "\xff\xfe"}')
    return "dataset.json", "not UTF-8"


@defect()
def json_not_an_object(root):
    _save_meta(root, [_meta(root)])
    return "dataset.json", "must hold a JSON object, not list"


@defect()
def duplicate_json_key(root):
    text = (root / "dataset.json").read_text()
    (root / "dataset.json").write_text(text.replace('"name":', '"labels": {},\n    "name":', 1))
    return "dataset.json", "duplicate key 'labels'"


@defect()
def training_missing(root):
    _edit_meta(root, lambda m: m.pop("training"))
    return "dataset.json", "key 'training' missing or not a list"


@defect()
def training_not_a_list(root):
    _edit_meta(root, lambda m: m.update(training={"image": "./imagesTr/la_001.nii.gz"}))
    return "dataset.json", "key 'training' missing or not a list"


@defect()
def training_empty(root):
    _edit_meta(root, lambda m: m.update(training=[], numTraining=0))
    return "dataset.json", "no training cases listed"


@defect()
def training_entry_not_an_object(root):
    _edit_meta(root, lambda m: m["training"].__setitem__(1, "./imagesTr/la_002.nii.gz"))
    return "dataset.json", "training[1] must have 'image' and 'label'"


@defect()
def training_path_not_a_string(root):
    _edit_meta(root, lambda m: m["training"][2].update(label=3))
    return "dataset.json", "training[2] 'image' and 'label' must be non-empty strings"


@defect()
def labels_missing(root):
    _edit_meta(root, lambda m: m.pop("labels"))
    return "dataset.json", "key 'labels' missing or not a dict"


@defect()
def labels_keys_not_integers(root):
    _edit_meta(root, lambda m: m.update(labels={"background": "0", "atrium": "1"}))
    return "dataset.json", "'labels' keys must be non-negative integers"


@defect()
def modality_keys_not_contiguous(root):
    _edit_meta(root, lambda m: m.update(modality={"1": "MRI"}))
    return "dataset.json", "'modality' keys must be 0..0"


@defect()
def num_training_wrong(root):
    _edit_meta(root, lambda m: m.update(numTraining=5))
    return "dataset.json", "numTraining is 5 but 3 training entries are listed"


@defect()
def num_test_wrong(root):
    _edit_meta(root, lambda m: m.update(numTest=2))
    return "dataset.json", "numTest is 2 but 1 test images are listed"


@defect()
def num_training_missing(root):
    _edit_meta(root, lambda m: m.pop("numTraining"))
    return "dataset.json", "key 'numTraining' missing"


@defect()
def num_test_not_an_integer(root):
    _edit_meta(root, lambda m: m.update(numTest="1"))
    return "dataset.json", "'numTest' must be a non-negative integer, got '1'"


@defect()
def test_not_a_list(root):
    _edit_meta(root, lambda m: m.update(test="./imagesTs"))
    return "dataset.json", "'test' must be a list"


def apply(name: str, root: Path) -> tuple[str, str]:
    """Generate the base task at ``root`` and apply defect ``name``."""
    kind, func = DEFECTS[name]
    make_task(kind, root)
    file_fragment, cause = func(root)
    return file_fragment.replace("/", os.sep), cause
