"""Model registry and user-architecture loading (Auto-CNNp's "architecture injection").

A builder is any callable ``builder(input_shape, n_classes, **options) -> keras.Model``.
Built-in names resolve lazily (``unet``, ``fcn``), so importing this package never imports
TensorFlow; a user builder is named ``"package.module:function"`` or
``"path/to/file.py:function"``. :func:`input_requirements` says, also without TensorFlow,
what a built-in does with an input size (pad to a multiple, crop back) or why it cannot.

Owns the architectures and losses; never imports the training, evaluation, report or tune
stages (they import it), nor TensorFlow at import time.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

BUILTIN = {
    "unet": "segscale.models.unet:build_unet",
    "fcn": "segscale.models.fcn:build_fcn",
}

Builder = Callable[..., Any]


def load_callable(spec: str) -> Builder:
    """Import the function named by ``spec``.

    Args:
        spec: ``"module.path:function"`` or ``"path/to/file.py:function"`` (relative paths
            resolve against the working directory). A file is loaded as a module named after
            its path hash, registered in ``sys.modules`` so pickling/serialisation can find it.

    Returns:
        The callable.

    Raises:
        ValueError: ``spec`` has no ``:function`` part, or the attribute is not callable.
        FileNotFoundError: a ``.py`` path that does not exist.
        ImportError: the module cannot be imported.
        AttributeError: the module has no such function.
    """
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not func:
        raise ValueError(f"builder {spec!r}: expected 'module:function' or 'file.py:function'")
    if target.endswith(".py") or "/" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"builder {spec!r}: file {path} not found")
        name = "segscale_user_arch_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            mspec = importlib.util.spec_from_file_location(name, path)
            if mspec is None or mspec.loader is None:
                raise ImportError(f"builder {spec!r}: cannot load {path}")
            module = importlib.util.module_from_spec(mspec)
            sys.modules[name] = module
            try:
                mspec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        module = importlib.import_module(target)
    try:
        fn = getattr(module, func)
    except AttributeError:
        raise AttributeError(f"builder {spec!r}: {target} has no attribute {func!r}") from None
    if not callable(fn):
        raise ValueError(f"builder {spec!r}: {func!r} is not callable")
    return fn


def resolve_builder(arch: str, builder: str | None = None) -> Builder:
    """The builder for ``arch``: ``builder`` if given, else a built-in or ``arch`` as a spec.

    Raises:
        ValueError: ``arch`` is neither built in nor a spec, and no ``builder`` is given.
    """
    if builder:
        return load_callable(builder)
    if arch in BUILTIN:
        return load_callable(BUILTIN[arch])
    if ":" in arch:
        return load_callable(arch)
    raise ValueError(f"--arch: unknown architecture {arch!r}: built-ins are "
                     f"{sorted(BUILTIN)}; name a user one with hparams.builder "
                     "'module:function' or 'file.py:function'")


def input_requirements(arch: str, image_shape: tuple[int, ...],
                       options: Mapping[str, Any] | None = None,
                       builder: str | None = None) -> dict[str, Any]:
    """What ``arch`` does with an (H, W, C) input, without importing TensorFlow.

    Built-ins zero-pad H and W symmetrically to the next multiple of ``2**poolings`` (FCN:
    32; U-Net: ``2**depth``) and crop the output back (:mod:`segscale.models.sizes`).

    Returns:
        For a built-in: ``{"arch", "checked": True, "input": [H, W], "multiple",
        "padded": [Hp, Wp], "pad": [[top, bottom], [left, right]], "cropped_back"}`` (JSON-able,
        for run.json). For a user builder (``builder``, or ``arch`` given as a spec):
        ``{"arch", "builder", "checked": False}``: only building it (TensorFlow) can tell.

    Raises:
        ValueError: an unknown architecture, an option the built-in does not take, a bad
            ``depth``, or a side smaller than ``2**poolings``.
    """
    if builder or (arch not in BUILTIN and ":" in arch):
        return {"arch": arch, "builder": builder or arch, "checked": False}
    if arch not in BUILTIN:
        resolve_builder(arch)  # raises the unknown-architecture message
    from segscale.models.sizes import builtin_requirements

    return builtin_requirements(arch, tuple(image_shape), options)


def check_options(fn: Builder, options: Mapping[str, Any]) -> None:
    """Refuse model options the builder does not accept (unless it takes ``**kwargs``).

    Raises:
        ValueError: naming the unknown option(s) and the accepted ones.
    """
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items()
                if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                              inspect.Parameter.POSITIONAL_OR_KEYWORD)][2:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"hparams.model: unknown option(s) {unknown} for "
                         f"{getattr(fn, '__name__', fn)}; accepted: {accepted}")


def build_model(arch: str, input_shape: tuple[int, int, int], n_classes: int,
                options: Mapping[str, Any] | None = None, builder: str | None = None) -> Any:
    """Build ``arch`` for ``input_shape`` (H, W, C) and ``n_classes`` softmax outputs.

    Raises:
        ValueError: unknown architecture or options, or a model whose output does not end in
            ``n_classes`` channels.
    """
    fn = resolve_builder(arch, builder)
    options = dict(options or {})
    check_options(fn, options)
    model = fn(tuple(input_shape), int(n_classes), **options)
    out_shape = getattr(model, "output_shape", None)
    if out_shape is not None and tuple(out_shape)[-1] != n_classes:
        raise ValueError(f"architecture {arch!r}: output shape {out_shape} does not end in "
                         f"{n_classes} classes")
    return model
