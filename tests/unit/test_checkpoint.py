"""Checkpoints: atomic, verified, and a corrupted or partial one is never loaded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segscale.train.checkpoint import (
    discard_newer,
    latest_checkpoint,
    verify,
    write_checkpoint,
)


def arrays(value: float) -> dict[str, list[np.ndarray]]:
    return {"weights": [np.full((3, 2), value, np.float32), np.arange(4.0)],
            "optimizer": [np.array(7, np.int64)]}


def test_round_trip(tmp_path):
    write_checkpoint(tmp_path, 3, "fp", arrays(1.5), {"history": [{"epoch": 0}]})
    ckpt = latest_checkpoint(tmp_path, "fp")
    assert ckpt.epochs_completed == 3 and ckpt.state == {"history": [{"epoch": 0}]}
    loaded = ckpt.load_arrays()
    assert len(loaded["weights"]) == 2
    np.testing.assert_array_equal(loaded["weights"][0], np.full((3, 2), 1.5, np.float32))
    np.testing.assert_array_equal(loaded["weights"][1], np.arange(4.0))
    assert int(loaded["optimizer"][0]) == 7


def test_many_arrays_keep_their_order(tmp_path):
    items = [np.array(i) for i in range(12)]
    write_checkpoint(tmp_path, 1, "fp", {"weights": items}, {})
    assert [int(a) for a in latest_checkpoint(tmp_path).load_arrays()["weights"]] == list(
        range(12))


def test_keeps_newest(tmp_path):
    for epoch in range(1, 5):
        write_checkpoint(tmp_path, epoch, "fp", arrays(epoch), {}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003", "epoch-0004"]


def test_empty_or_missing_root(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "absent") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_marker", "bad_marker",
                                    "drop_arrays"])
def test_corrupted_newest_falls_back_to_older(tmp_path, damage):
    write_checkpoint(tmp_path, 1, "fp", arrays(1.0), {"n": 1})
    newest = write_checkpoint(tmp_path, 2, "fp", arrays(2.0), {"n": 2})
    blob = newest / "arrays.npz"
    if damage == "truncate":
        blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    elif damage == "flip":
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    elif damage == "drop_marker":
        (newest / "checkpoint.json").unlink()
    elif damage == "bad_marker":
        (newest / "checkpoint.json").write_text("{not json")
    else:
        blob.unlink()
    with pytest.raises(ValueError):
        verify(newest)
    ckpt = latest_checkpoint(tmp_path, "fp")
    assert ckpt.epochs_completed == 1 and ckpt.state == {"n": 1}


def test_partial_directory_is_invisible(tmp_path):
    write_checkpoint(tmp_path, 1, "fp", arrays(1.0), {})
    partial = tmp_path / ".epoch-0002.abc.partial"  # what a killed writer leaves
    partial.mkdir()
    (partial / "arrays.npz").write_bytes(b"half")
    assert latest_checkpoint(tmp_path).epochs_completed == 1
    write_checkpoint(tmp_path, 2, "fp", arrays(2.0), {})
    assert not partial.exists()


def test_renamed_directory_is_refused(tmp_path):
    path = write_checkpoint(tmp_path, 1, "fp", arrays(1.0), {})
    path.rename(tmp_path / "epoch-0005")
    assert latest_checkpoint(tmp_path) is None


def test_foreign_fingerprint_skipped(tmp_path):
    write_checkpoint(tmp_path, 1, "mine", arrays(1.0), {})
    write_checkpoint(tmp_path, 2, "other", arrays(2.0), {})
    assert latest_checkpoint(tmp_path, "mine").epochs_completed == 1
    assert latest_checkpoint(tmp_path, "none-of-these") is None


def test_rewrite_same_epoch_replaces(tmp_path):
    write_checkpoint(tmp_path, 1, "fp", arrays(1.0), {"v": 1})
    write_checkpoint(tmp_path, 1, "fp", arrays(9.0), {"v": 2})
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.state == {"v": 2}
    assert ckpt.load_arrays()["weights"][0][0, 0] == 9.0


def test_discard_newer(tmp_path):
    for epoch in (1, 2, 3):
        write_checkpoint(tmp_path, epoch, "fp", arrays(epoch), {}, keep=5)
    removed = discard_newer(tmp_path, 1)
    assert sorted(p.name for p in removed) == ["epoch-0002", "epoch-0003"]
    assert latest_checkpoint(tmp_path).epochs_completed == 1


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_checkpoint(tmp_path, -1, "fp", arrays(1.0), {})
    with pytest.raises(ValueError):
        write_checkpoint(tmp_path, 1, "fp", {"a__b": [np.zeros(1)]}, {})
    assert latest_checkpoint(tmp_path) is None


def test_marker_of_the_wrong_shape_is_refused_not_a_crash(tmp_path):
    from segscale.train.checkpoint import FORMAT_VERSION, MARKER, verify

    ckpt = tmp_path / "epoch-0001"
    ckpt.mkdir()
    (ckpt / "arrays.npz").write_bytes(b"x")
    (ckpt / MARKER).write_text(json.dumps({"format": FORMAT_VERSION,
                                           "files": {"arrays.npz": {"size": 1}}}))
    with pytest.raises(ValueError, match="malformed"):
        verify(ckpt)
