"""Models at the configured sizes, built for real in the training environment: every
(dataset, arch) of config/thesis.yaml dry-builds with output (H, W, n_classes); padding to
a multiple and cropping back equals running the unpadded network on a zero-padded image;
a U-Net trains and predicts at a size its poolings do not divide."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import yaml
from train_helpers import REPO, TINY, make_store, run_python, run_train

from segscale.data.params import DatasetParams
from segscale.models import input_requirements
from segscale.models.sizes import BUILTIN_OPTIONS, pad_to_multiple
from segscale.train.config import TrainConfig

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


def thesis_models() -> list[dict]:
    """One entry per (dataset, arch) of the thesis sweep: shapes as the jobs will see them."""
    config = yaml.safe_load((REPO / "config" / "thesis.yaml").read_text())
    out = []
    for name, arch in itertools.product(config["sweep"]["datasets"], config["sweep"]["archs"]):
        params = DatasetParams.from_mapping(name, config["datasets"][name])
        cfg = TrainConfig.from_mapping(config["archs"][arch])
        # A dry build: VGG-16 weights (a file path) change no shape and are not loaded here.
        options = {k: v for k, v in cfg.model.items() if k != "vgg16_weights"}
        shape = [*params.size, len(params.channels)]
        out.append({"key": f"{name}/{arch}", "arch": arch, "shape": shape,
                    "n_classes": params.n_classes, "options": options, "builder": cfg.builder,
                    "requirements": input_requirements(arch, shape, options, cfg.builder)})
    return out


def test_thesis_config_covers_what_it_should():
    keys = {m["key"]: m for m in thesis_models()}
    assert set(keys) == {"brats/unet", "brats/fcn", "lasc/unet", "lasc/fcn"}
    assert keys["brats/fcn"]["shape"] == [240, 240, 1]
    assert keys["brats/fcn"]["requirements"]["pad"] == [[8, 8], [8, 8]]
    assert keys["lasc/fcn"]["requirements"]["pad"] == [[0, 0], [0, 0]]


def test_every_thesis_model_builds_at_its_configured_size(train_python):
    models = thesis_models()
    out = run_python(train_python, f"""
import json, tensorflow as tf
from segscale.models import build_model
for m in json.loads({json.dumps(json.dumps(models))}):
    tf.keras.backend.clear_session()
    model = build_model(m["arch"], tuple(m["shape"]), m["n_classes"], m["options"],
                        m["builder"])
    names = [layer.name for layer in model.layers]
    pad = model.get_layer("input_pad").padding if "input_pad" in names else None
    crop = model.get_layer("output_crop").cropping if "output_crop" in names else None
    print(json.dumps({{"key": m["key"], "out": list(model.output_shape),
                      "pad": pad, "crop": crop, "params": model.count_params()}}))
""", timeout=600)
    built = {r["key"]: r for r in map(json.loads, out.strip().splitlines()[-len(models):])}
    for m in models:
        r = built[m["key"]]
        h, w, _ = m["shape"]
        assert r["out"] == [None, h, w, m["n_classes"]], m["key"]
        req = m["requirements"]
        if req["cropped_back"]:
            assert r["pad"] == r["crop"] == req["pad"], m["key"]
        else:
            assert r["pad"] is None and r["crop"] is None, m["key"]
    # the thesis geometry: VGG-16 + fc6/fc7 (4096) of FCN-8s, the original U-Net
    assert built["brats/fcn"]["params"] > 134_000_000
    assert 31_000_000 < built["lasc/unet"]["params"] < 32_000_000


def test_builtin_option_table_matches_the_builders(train_python):
    """The TensorFlow-free option table (pre-job check) is what the builders accept."""
    out = run_python(train_python, """
import inspect, json
from segscale.models.fcn import build_fcn
from segscale.models.unet import build_unet
print(json.dumps({n: list(inspect.signature(f).parameters)[2:]
                  for n, f in (("unet", build_unet), ("fcn", build_fcn))}))
""")
    got = json.loads(out.strip().splitlines()[-1])
    assert {k: set(v) for k, v in got.items()} == {k: set(v) for k, v in BUILTIN_OPTIONS.items()}


@pytest.mark.parametrize("arch, size, options, multiple", [
    ("fcn", 40, {"base_filters": 2, "fc_filters": 4, "dropout": 0.0}, 32),   # 64: (12, 12)
    ("fcn", 33, {"base_filters": 2, "fc_filters": 4, "dropout": 0.0}, 32),   # 64: (15, 16)
    ("unet", 34, {"depth": 2, "base_filters": 2}, 4),                       # 36: (1, 1)
    ("unet", 37, {"depth": 3, "base_filters": 2}, 8),                       # 40: (1, 2)
])
def test_pad_and_crop_equal_padding_the_image(train_python, arch, size, options, multiple):
    """The model at H x W equals the same weights at the padded size on a zero-padded image,
    cropped back: the crop takes exactly the input's pixels."""
    top, bottom = pad_to_multiple(size, multiple)
    padded = size + top + bottom
    out = run_python(train_python, f"""
import numpy as np, tensorflow as tf
from segscale.models import build_model
a = build_model({arch!r}, ({size}, {size}, 2), 3, {options!r})
b = build_model({arch!r}, ({padded}, {padded}, 2), 3, {options!r})
names = [layer.name for layer in a.layers]
assert "input_pad" in names and "input_pad" not in [layer.name for layer in b.layers]
b.set_weights(a.get_weights())
x = np.random.default_rng(0).normal(size=(2, {size}, {size}, 2)).astype("float32")
ya = a(x, training=False).numpy()
xb = np.pad(x, ((0, 0), ({top}, {bottom}), ({top}, {bottom}), (0, 0)))
yb = b(xb, training=False).numpy()[:, {top}:{top + size}, {top}:{top + size}]
print(ya.shape, np.abs(ya - yb).max() < 1e-5)
""")
    assert out.strip().splitlines()[-1] == f"(2, {size}, {size}, 3) True"


def test_unet_trains_and_predicts_at_a_padded_size(train_python, tmp_path):
    """36 x 36 slices with depth 3 (multiples of 8): padded to 40 inside, crop back; train,
    then predict from the saved model.keras."""
    stores = {"train": make_store(tmp_path / "train", 16, 0, size=36),
              "val": make_store(tmp_path / "val", 8, 1, size=36),
              "test": make_store(tmp_path / "test", 4, 2, size=36)}
    hp = {**TINY, "epochs": 1, "model": {"depth": 3, "base_filters": 4}}
    run = run_train(train_python, stores, tmp_path / "run", hp, ranks=1)
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    assert run.manifest["status"] == "ok"
    # what the model did with the 36 x 36 input is in run.json
    assert run.manifest["model_input"] == {
        "arch": "unet", "checked": True, "input": [36, 36], "multiple": 8,
        "padded": [40, 40], "pad": [[2, 2], [2, 2]], "cropped_back": True}
    pred = tmp_path / "pred.npy"
    run_python(train_python, f"""
import sys
from segscale.evaluate.predict import main
sys.exit(main(["--run", {str(run.out)!r}, "--store", {str(stores["test"])!r},
               "--pred", {str(pred)!r}, "--inference", {str(tmp_path / "inf.json")!r},
               "--timing-images", "1"]))
""")
    assert np.load(pred).shape == (4, 36, 36)
