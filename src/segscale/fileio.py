"""Atomic file writing: a crashed or killed step never leaves a file that looks complete.

Every writer puts its bytes in a temporary file beside the target (same filesystem) and
``os.replace``s it into place, so readers see either the old file, or the whole new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which would race with
# threads creating files (samplers, TensorBoard) if done on every write.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.
    ``suffix`` keeps an extension some writers insist on (``np.save`` appends ``.npy``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars/arrays and paths, which ``json`` refuses."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(target: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON atomically.

    NaN is written as ``NaN`` (Python's json dialect) so that "undefined" survives a round trip.
    """
    write_text(target, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON written by :func:`write_json`, with a message naming the file on failure."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Checksum of a file, read in chunks (volumes and checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_object_arg(text: str, what: str) -> dict[str, Any]:
    """A CLI's JSON object argument, given inline or as ``@file.json``.

    Raises:
        ValueError: unreadable file, invalid JSON or not an object (the message names
            ``what``, e.g. ``--hparams``, and the file).
    """
    source = what
    if text.startswith("@"):
        source = f"{what} {text[1:]}"
        try:
            text = Path(text[1:]).read_text()
        except OSError as err:
            raise ValueError(f"{source}: cannot read ({err.strerror})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value
