"""Architecture registry and user-builder loading, without TensorFlow."""

from __future__ import annotations

import sys
import textwrap

import pytest

from segscale.models import BUILTIN, build_model, check_options, load_callable, resolve_builder


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_arch.py"
    path.write_text(textwrap.dedent("""
        class M:
            def __init__(self, shape, n, width):
                self.output_shape = (None, shape[0], shape[1], n)
                self.width = width

        def build(input_shape, n_classes, width=8):
            return M(input_shape, n_classes, width)

        def wrong(input_shape, n_classes):
            return M(input_shape, n_classes + 1, 0)

        NOT_CALLABLE = 3
    """))
    return path


def test_builtin_names_are_lazy():
    """Importing the registry must not import TensorFlow (the workflow env has none)."""
    assert set(BUILTIN) == {"unet", "fcn"}
    assert all(":" in spec for spec in BUILTIN.values())
    assert "segscale.models.unet" not in sys.modules


def test_file_builder(user_file):
    model = build_model("mine", (16, 16, 1), 3, {"width": 4}, builder=f"{user_file}:build")
    assert model.output_shape == (None, 16, 16, 3) and model.width == 4


def test_arch_as_spec(user_file):
    assert build_model(f"{user_file}:build", (8, 8, 1), 2).output_shape[-1] == 2


def test_module_builder(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    fn = load_callable("my_arch:build")
    assert fn((4, 4, 1), 2).width == 8


def test_unknown_option_named(user_file):
    with pytest.raises(ValueError, match="depth"):
        build_model("mine", (8, 8, 1), 2, {"depth": 3}, builder=f"{user_file}:build")


def test_wrong_class_count_refused(user_file):
    with pytest.raises(ValueError, match="classes"):
        build_model("mine", (8, 8, 1), 2, builder=f"{user_file}:wrong")


def test_var_kwargs_accepts_anything():
    def b(shape, n, **kw):
        return None
    check_options(b, {"anything": 1})


@pytest.mark.parametrize("spec, error", [
    ("no_colon", ValueError),
    (":build", ValueError),
    ("/definitely/missing.py:build", FileNotFoundError),
    ("segscale_no_such_module_xyz:build", ImportError),
    ("segscale.fileio:no_such_function", AttributeError),
])
def test_bad_specs(spec, error):
    with pytest.raises(error):
        load_callable(spec)


def test_not_callable(user_file):
    with pytest.raises(ValueError, match="not callable"):
        load_callable(f"{user_file}:NOT_CALLABLE")


def test_unknown_arch_message():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        resolve_builder("resnet")
