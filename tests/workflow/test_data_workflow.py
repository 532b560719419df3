"""The data stage through snakemake itself, from a raw (generated) task to slice stores."""

from __future__ import annotations

import json

import pytest
import yaml

from segscale.data.store import SliceStore

from .helpers import REPO, TEST_CONFIG, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    proc = snakemake(workdir, "--configfile", str(TEST_CONFIG), "--profile",
                     str(REPO / "profiles" / "local"), "data", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_every_store_is_built(data_run):
    base = data_run / "results" / "data" / "tiny-heart" / "store"
    counts = {}
    for split in ("train", "val", "test", "train-augmented"):
        store = SliceStore.open(base / split)
        counts[split] = len(store)
        assert store.images.shape[1:] == (32, 32, 1)
    assert counts["train-augmented"] == 60  # augment.target in .test/config
    split = json.loads((data_run / "results/data/tiny-heart/split.json").read_text())
    assert split["counts"] == {"train": 6, "val": 2, "test": 2}
    # Every rule left a log.
    logs = {p.name for p in (data_run / "results" / "logs").rglob("*.log")}
    assert {"inspect.log", "split.log", "slice_train.log", "augment.log"} <= logs


def test_rerun_has_nothing_to_do(data_run):
    proc = snakemake(data_run, "--configfile", str(TEST_CONFIG), "--cores", "1", "-n", "data",
                     timeout=120)
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["datasets"]["tiny-heart"].update(sliecs={"count": 3}), "sliecs"),
    (lambda c: c["datasets"]["tiny-heart"].update(size=[4, 4]), "size"),
    (lambda c: c["datasets"].update({"Bad Name": {"demo": "heart"}}), "Bad Name"),
    (lambda c: c["datasets"]["tiny-heart"]["slices"].update(select="random"), "random"),
    (lambda c: c["archs"]["unet"].update(epohcs=3), "archs.unet: hparams: unknown key 'epohcs'"),
    (lambda c: c["archs"]["unet"].update(lr=-1), "hparams.lr: must be > 0"),
    (lambda c: c["datasets"]["tiny-heart"].update(lr={"unte": 1e-3}),
     "datasets.tiny-heart.lr: ['unte'] are not architectures"),
    (lambda c: c["datasets"]["tiny-heart"].update(label_map=[0, 2]), "consecutive classes"),
    (lambda c: (c["sweep"].update(policies=["none", "grescale"]),
                c["archs"]["unet"].update(warmup_epochs=2)),
     "archs.unet: hparams: GreScale: no stabilisation epoch left"),
])
def test_bad_config_is_refused_before_any_job(tmp_path, mutate, message):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    mutate(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--configfile", str(path), "--cores", "1", "data", timeout=120)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_volume_edited_after_inspection_is_inspected_again(tmp_path):
    """Every listed volume is an input of inspect: touching one reschedules inspect (and
    what follows), and the edit is then judged against inspect's checksums."""
    import os

    import nibabel as nib
    import numpy as np

    from segscale.data.demo import generate

    task = tmp_path / "Task02_Heart"
    generate("heart", task, n_train=4, n_test=1)
    config = yaml.safe_load(TEST_CONFIG.read_text())
    section = config["datasets"]["tiny-heart"]
    section.pop("demo")
    section["root"] = str(task)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    args = ("--configfile", str(path), "--cores", "1")
    inspect_out = "results/data/tiny-heart/inspect.json"
    first = snakemake(work, *args, "--", inspect_out, timeout=300)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Nothing to be done" in snakemake(work, *args, "-n", "--", inspect_out).stdout
    meta = json.loads((task / "dataset.json").read_text())
    edited = task / meta["training"][2]["label"]
    image = nib.load(edited)
    labels = np.asarray(image.dataobj).copy()
    labels[0, 0, 0] = 1 - labels[0, 0, 0]  # one voxel: new content, still a valid label
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), edited)
    later = (work / inspect_out).stat().st_mtime + 5  # Snakemake compares mtime, then content
    os.utime(edited, (later, later))
    again = snakemake(work, *args, "-n", "--", inspect_out, timeout=120)
    assert again.returncode == 0
    assert "rule inspect:" in again.stdout
    assert edited.name in again.stdout  # named among the updated inputs
