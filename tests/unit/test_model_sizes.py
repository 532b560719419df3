"""Input sizes of the built-in architectures (pad to a multiple, crop back), without
TensorFlow: hand-computed padding, the registry's requirement record, refusals."""

from __future__ import annotations

import json
import sys

import pytest

from segscale.models import input_requirements
from segscale.models.sizes import fcn_padding, pad_to_multiple, unet_padding


@pytest.mark.parametrize("size, multiple, expected", [
    (240, 32, (8, 8)),     # 240 -> 256: 16 rows, split evenly
    (512, 32, (0, 0)),     # already a multiple
    (100, 32, (14, 14)),   # 100 -> 128: 28
    (33, 32, (15, 16)),    # 33 -> 64: 31, the odd pixel after
    (32, 32, (0, 0)),
    (63, 32, (0, 1)),      # 63 -> 64
    (240, 16, (0, 0)),     # U-Net depth 4: 240 = 15 x 16
    (250, 16, (3, 3)),     # 250 -> 256
    (37, 8, (1, 2)),       # 37 -> 40
])
def test_pad_to_multiple_by_hand(size, multiple, expected):
    assert pad_to_multiple(size, multiple) == expected
    before, after = expected
    assert (size + before + after) % multiple == 0 and before + after < multiple


def test_fcn_padding_per_axis():
    assert fcn_padding(240, 240) == ((8, 8), (8, 8))
    assert fcn_padding(512, 512) == ((0, 0), (0, 0))
    assert fcn_padding(100, 33) == ((14, 14), (15, 16))


def test_unet_padding_follows_depth():
    assert unet_padding(240, 240, 4) == ((0, 0), (0, 0))
    assert unet_padding(240, 240, 5) == ((8, 8), (8, 8))    # 240 -> 256
    assert unet_padding(100, 60, 2) == ((0, 0), (0, 0))
    assert unet_padding(101, 62, 2) == ((1, 2), (1, 1))      # 104, 64


@pytest.mark.parametrize("call, match", [
    (lambda: fcn_padding(16, 64), r"fcn: input 16x64 is smaller than 32 pixels"),
    (lambda: fcn_padding(64, 31), r"smaller than 32"),
    (lambda: unet_padding(8, 8, 4), r"unet: input 8x8 is smaller than 16 pixels"),
    (lambda: unet_padding(64, 64, 0), r"depth must be an integer >= 1"),
    (lambda: unet_padding(64, 64, 2.0), r"depth must be an integer >= 1"),
    (lambda: unet_padding(64, 64, True), r"depth must be an integer >= 1"),
])
def test_too_small_or_bad_depth_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_requirements_of_thesis_sizes():
    fcn = input_requirements("fcn", (240, 240, 1), {"base_filters": 64, "fc_filters": 4096})
    assert fcn == {"arch": "fcn", "checked": True, "input": [240, 240], "multiple": 32,
                   "padded": [256, 256], "pad": [[8, 8], [8, 8]], "cropped_back": True}
    json.dumps(fcn)  # recordable in run.json as is
    unet = input_requirements("unet", (240, 240, 1), {"depth": 4})
    assert unet["pad"] == [[0, 0], [0, 0]] and unet["multiple"] == 16
    assert not unet["cropped_back"]
    assert input_requirements("unet", (512, 512, 1))["multiple"] == 16  # default depth 4
    assert input_requirements("fcn", (512, 512, 1))["padded"] == [512, 512]


@pytest.mark.parametrize("arch, shape, options, match", [
    ("fcn", (16, 16, 1), {}, "smaller than 32"),
    ("unet", (32, 32, 1), {"depth": 6}, "smaller than 64"),
    ("unet", (64, 64, 1), {"depht": 3}, r"unknown option\(s\) \['depht'\] for unet"),
    ("fcn", (64, 64, 1), {"depth": 3}, r"unknown option\(s\) \['depth'\] for fcn"),
    ("fcn", (64, 64, 0), {}, "C >= 1"),
    ("fcn", (64, 64), {}, r"\(H, W, C\)"),
    ("resnet", (64, 64, 1), {}, "unknown architecture 'resnet'"),
])
def test_requirements_refusals(arch, shape, options, match):
    with pytest.raises(ValueError, match=match):
        input_requirements(arch, shape, options)


def test_user_builders_are_not_checked_without_tensorflow():
    spec = "segscale_no_such_module_xyz:build"  # never imported
    assert input_requirements("mine", (7, 7, 1), {"x": 1}, builder=spec) == {
        "arch": "mine", "builder": spec, "checked": False}
    assert input_requirements(spec, (7, 7, 1))["checked"] is False
    assert "segscale_no_such_module_xyz" not in sys.modules
    assert "tensorflow" not in sys.modules
