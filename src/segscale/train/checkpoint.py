"""Training checkpoints that are either complete and verified, or ignored.

A checkpoint is a directory ``ckpt/epoch-NNNN/`` (NNNN = epochs completed) holding
``arrays.npz`` (model weights, optimizer state) and ``checkpoint.json`` (epochs completed, run
fingerprint, history so far, controller state, and the size and sha256 of ``arrays.npz``).
Both are written into a hidden ``.partial`` directory which is renamed into place only when
complete, so a killed writer leaves nothing that looks like a checkpoint; a checkpoint whose
files were later truncated or altered fails its checksum and is skipped in favour of an older
one. No TensorFlow here: the arrays are plain numpy.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segscale.fileio import sha256

log = logging.getLogger(__name__)

ARRAYS = "arrays.npz"
MARKER = "checkpoint.json"
_NAME = re.compile(r"^epoch-(\d{4,})$")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint on disk."""

    path: Path
    epochs_completed: int
    fingerprint: str
    state: dict[str, Any]

    def load_arrays(self) -> dict[str, list[np.ndarray]]:
        """The saved array groups (e.g. ``weights``, ``optimizer``), each a list in order."""
        with np.load(self.path / ARRAYS, allow_pickle=False) as npz:
            groups: dict[str, list[tuple[int, np.ndarray]]] = {}
            for key in npz.files:
                group, _, idx = key.rpartition("__")
                groups.setdefault(group, []).append((int(idx), npz[key]))
        return {g: [a for _, a in sorted(items, key=lambda t: t[0])]
                for g, items in groups.items()}


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems refuse to open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(root: str | os.PathLike, epochs_completed: int, fingerprint: str,
                     arrays: dict[str, list[np.ndarray]], state: dict[str, Any],
                     keep: int = 2) -> Path:
    """Write a checkpoint atomically and prune all but the ``keep`` newest.

    Args:
        root: the ``ckpt/`` directory (created if missing).
        epochs_completed: epochs finished when the state was taken (resume starts there).
        fingerprint: identifies the run configuration; a checkpoint only resumes a run with
            the same fingerprint.
        arrays: named groups of arrays, e.g. ``{"weights": [...], "optimizer": [...]}``; a
            group name must not contain ``"__"``.
        state: JSON-serialisable extra state (history rows, early-stopping counters...).
        keep: how many complete checkpoints to keep (>= 1).

    Returns:
        The checkpoint directory.

    Raises:
        ValueError: ``epochs_completed`` < 0, ``keep`` < 1 or a group name with ``"__"``.
    """
    if epochs_completed < 0 or keep < 1:
        raise ValueError(f"epochs_completed must be >= 0 and keep >= 1, got "
                         f"{epochs_completed}, {keep}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epochs_completed:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
    try:
        flat = {}
        for group, items in arrays.items():
            if "__" in group:
                raise ValueError(f"array group name {group!r} must not contain '__'")
            for i, arr in enumerate(items):
                flat[f"{group}__{i:05d}"] = np.asarray(arr)
        np.savez(tmp / ARRAYS, **flat)
        _fsync_file(tmp / ARRAYS)
        marker = {
            "format": FORMAT_VERSION,
            "epochs_completed": int(epochs_completed),
            "fingerprint": fingerprint,
            "files": {ARRAYS: {"bytes": (tmp / ARRAYS).stat().st_size,
                               "sha256": sha256(tmp / ARRAYS)}},
            "state": state,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, allow_nan=True))
        _fsync_file(tmp / MARKER)
        if final.exists():  # an older checkpoint of the same epoch (rerun): replace it
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=root))
            os.replace(final, trash / final.name)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(root, keep)
    return final


def _candidates(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _NAME.match(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found, reverse=True)


def verify(path: str | os.PathLike) -> Checkpoint:
    """Open one checkpoint directory, checking its marker and checksums.

    Raises:
        ValueError: missing or unreadable marker, missing file, wrong size or checksum, or an
            epoch count that disagrees with the directory name.
    """
    path = Path(path)
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: no readable {MARKER} ({err})") from None
    try:
        return _verified(path, marker)
    except (KeyError, TypeError, AttributeError) as err:  # valid JSON, wrong shape
        raise ValueError(f"{path}: malformed {MARKER} ({type(err).__name__}: {err})") from None


def _verified(path: Path, marker: dict) -> Checkpoint:
    if marker.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unknown checkpoint format {marker.get('format')!r}")
    for name, meta in marker.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise ValueError(f"{path}: {name} missing")
        if f.stat().st_size != meta["bytes"] or sha256(f) != meta["sha256"]:
            raise ValueError(f"{path}: {name} is corrupted (size or sha256 mismatch)")
    if ARRAYS not in marker.get("files", {}):
        raise ValueError(f"{path}: marker lists no {ARRAYS}")
    m = _NAME.match(path.name)
    if m is None or int(m.group(1)) != marker["epochs_completed"]:
        raise ValueError(f"{path}: directory name disagrees with epochs_completed "
                         f"{marker['epochs_completed']}")
    return Checkpoint(path, int(marker["epochs_completed"]), str(marker["fingerprint"]),
                      marker.get("state", {}))


def latest_checkpoint(root: str | os.PathLike, fingerprint: str | None = None
                      ) -> Checkpoint | None:
    """The newest checkpoint under ``root`` that verifies and matches ``fingerprint``.

    Corrupted, partial or foreign (other fingerprint) checkpoints are skipped with a warning,
    never loaded; ``None`` when nothing usable exists (the run starts from scratch).
    """
    for _, path in _candidates(Path(root)):
        try:
            ckpt = verify(path)
        except ValueError as err:
            log.warning("skipping checkpoint: %s", err)
            continue
        if fingerprint is not None and ckpt.fingerprint != fingerprint:
            log.warning("skipping checkpoint %s: written by a different run configuration",
                        path)
            continue
        return ckpt
    return None


def prune(root: str | os.PathLike, keep: int) -> None:
    """Remove all but the ``keep`` newest checkpoints and any leftover partial directories."""
    root = Path(root)
    for _, path in _candidates(root)[keep:]:
        shutil.rmtree(path, ignore_errors=True)
    for child in root.iterdir():
        if child.name.startswith(".") and child.name.endswith((".partial", ".old")):
            shutil.rmtree(child, ignore_errors=True)


def discard_newer(root: str | os.PathLike, epochs_completed: int) -> list[Path]:
    """Remove checkpoints of more than ``epochs_completed`` epochs (unusable ones a resume
    skipped), so that pruning by age never deletes the checkpoints the resumed run writes.

    Returns:
        The removed directories.
    """
    removed = []
    for epoch, path in _candidates(Path(root)):
        if epoch > epochs_completed:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
