"""TrainConfig: defaults, unknown keys, types and ranges (no TensorFlow needed)."""

from __future__ import annotations

import json

import pytest

from segscale.train.config import RunSpec, TrainConfig, parse_hparams


def test_defaults_are_thesis_unet():
    c = TrainConfig()
    assert (c.optimizer, c.batch_size, c.epochs, c.lr, c.warmup_epochs) == (
        "sgd", 7, 100, 1e-5, 5)


def test_round_trip_through_json():
    c = TrainConfig.from_mapping({"epochs": 3, "model": {"depth": 2, "base_filters": 4},
                                  "step_decay": {"epochs": [2, 1], "gamma": 0.5}})
    again = TrainConfig.from_mapping(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert c.step_decay_epochs == (1, 2) and c.step_decay_gamma == 0.5
    assert dict(c.model) == {"depth": 2, "base_filters": 4}


def test_model_mapping_is_read_only():
    c = TrainConfig.from_mapping({"model": {"depth": 2}})
    with pytest.raises(TypeError):
        c.model["depth"] = 3


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="'epoch'"):
        TrainConfig.from_mapping({"epoch": 3})


@pytest.mark.parametrize("key, value", [
    ("epochs", 0), ("batch_size", 0), ("lr", 0), ("lr", -1e-3), ("optimizer", "rmsprop"),
    ("momentum", 1.0), ("loss", "focal"), ("warmup_epochs", -1),
    ("stabilisation_factor", 0), ("stabilisation_factor", 2), ("decay_coefficient", -1),
    ("decay_fraction", 1.5), ("step_decay_gamma", 0), ("step_decay_epochs", [0]),
    ("threads_per_rank", -1), ("divergence_factor", 0.5), ("early_stopping_patience", -1),
    ("steps_per_epoch", 0), ("validation_steps", 0), ("checkpoint_every", 0),
    ("keep_checkpoints", 0), ("sync_every_steps", 0), ("sample_interval_s", 0),
    ("builder", "no_colon"),
])
def test_out_of_range_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"hparams.{key}"):
        TrainConfig.from_mapping({key: value})


@pytest.mark.parametrize("key, value", [
    ("epochs", 2.5), ("epochs", "3"), ("epochs", True), ("lr", "1e-3"), ("fp16_allreduce", 1),
    ("model", [1]), ("step_decay_epochs", [1.5]), ("epochs", None),
])
def test_wrong_type_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"hparams.{key}"):
        TrainConfig.from_mapping({key: value})


def test_int_accepted_for_float_and_null_for_optional():
    c = TrainConfig.from_mapping({"lr": 1, "steps_per_epoch": None})
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.steps_per_epoch is None


def test_bad_step_decay_shape():
    with pytest.raises(ValueError, match="step_decay"):
        TrainConfig.from_mapping({"step_decay": {"milestones": [3]}})


def test_schedule_uses_config():
    s = TrainConfig(epochs=12, lr=2.0, warmup_epochs=3).schedule("gradual", 4, 10)
    assert (s.base_lr, s.n_ranks, s.epochs, s.steps_per_epoch, s.warmup_epochs) == (
        2.0, 4, 12, 10, 3)


def test_parse_hparams(tmp_path):
    assert parse_hparams(None) == TrainConfig()
    assert parse_hparams('{"epochs": 2}').epochs == 2
    f = tmp_path / "h.json"
    f.write_text('{"batch_size": 3}')
    assert parse_hparams(f"@{f}").batch_size == 3
    with pytest.raises(ValueError, match="JSON"):
        parse_hparams("{epochs: 2}")
    with pytest.raises(ValueError, match="object"):
        parse_hparams("[1]")


def test_run_spec_validates_policy_and_seed(tmp_path):
    spec = RunSpec(tmp_path, tmp_path, tmp_path / "run", "demo", "unet", "grescale", 0)
    assert spec.to_dict()["out"] == str(tmp_path / "run")
    with pytest.raises(ValueError, match="--policy"):
        RunSpec(tmp_path, tmp_path, tmp_path, "demo", "unet", "linear", 0)
    with pytest.raises(ValueError, match="--seed"):
        RunSpec(tmp_path, tmp_path, tmp_path, "demo", "unet", "none", -1)


def test_hparams_file_that_cannot_be_read_is_named(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match=f"--hparams {missing}: cannot read"):
        parse_hparams(f"@{missing}")


# ---- presets ---------------------------------------------------------------------------------

def test_thesis_preset_expands_and_is_recorded():
    c = TrainConfig.from_mapping({"preset": "thesis", "epochs": 120})
    assert (c.optimizer, c.warmup_epochs, c.lr, c.base_warmup_epochs) == ("sgd", 5, 1e-5, 5)
    assert c.decay_fraction == pytest.approx(3 / 7)
    record = c.to_dict()  # what run.json records under hparams
    assert record["preset"] == "thesis"
    assert (record["optimizer"], record["warmup_epochs"], record["lr"]) == ("sgd", 5, 1e-5)
    assert TrainConfig.from_mapping(json.loads(json.dumps(record))) == c


def test_explicit_keys_override_the_preset():
    c = TrainConfig.from_mapping({"preset": "thesis", "optimizer": "adam", "lr": 3e-5,
                                  "warmup_epochs": 7})
    assert (c.optimizer, c.lr, c.warmup_epochs, c.preset) == ("adam", 3e-5, 7, "thesis")
    assert c.base_warmup_epochs == 5  # not overridden: from the preset


def test_preset_values_fill_the_absent_keys(monkeypatch):
    """A preset whose values differ from the defaults: absent keys take the preset's."""
    from segscale.train import config as config_module
    monkeypatch.setattr(config_module, "PRESETS", {"demo": {"optimizer": "adam", "lr": 1e-3,
                                                            "epochs": 3}})
    c = TrainConfig.from_mapping({"preset": "demo", "lr": 2e-3})
    assert (c.optimizer, c.lr, c.epochs, c.preset) == ("adam", 2e-3, 3, "demo")


def test_without_preset_nothing_is_recorded():
    assert TrainConfig.from_mapping({}).to_dict()["preset"] is None
    assert TrainConfig.from_mapping({"preset": None}) == TrainConfig()


@pytest.mark.parametrize("value", ["goyal", 3, ["thesis"]])
def test_unknown_preset_is_refused_by_name(value):
    with pytest.raises(ValueError, match="hparams.preset"):
        TrainConfig.from_mapping({"preset": value})


@pytest.mark.parametrize("key, value", [("base_warmup_epochs", -1), ("decay_shape", "cos")])
def test_grescale_keys_range(key, value):
    with pytest.raises(ValueError, match=f"hparams.{key}"):
        TrainConfig.from_mapping({key: value})


def test_precision_and_xla_default_off_and_round_trip():
    c = TrainConfig()
    assert (c.precision, c.xla) == ("float32", False)
    c = TrainConfig.from_mapping({"precision": "mixed_float16", "xla": True})
    assert c.to_dict()["precision"] == "mixed_float16" and c.to_dict()["xla"] is True
    assert TrainConfig.from_mapping(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("key, value", [
    ("precision", "float16"), ("precision", "mixed_bfloat16"), ("precision", 16),
    ("precision", None), ("xla", 1), ("xla", "true"), ("xla", None),
])
def test_precision_and_xla_are_checked_by_name(key, value):
    with pytest.raises(ValueError, match=f"hparams.{key}"):
        TrainConfig.from_mapping({key: value})


def test_ps_tasks_default_and_range():
    assert TrainConfig().ps_tasks == 1
    assert TrainConfig.from_mapping({"ps_tasks": 2}).ps_tasks == 2
    with pytest.raises(ValueError, match="ps_tasks"):
        TrainConfig.from_mapping({"ps_tasks": 0})


@pytest.mark.parametrize("hparams, named", [
    ({"fp16_allreduce": True}, "fp16_allreduce"),
    ({"timeline": True}, "timeline"),
    ({"xla": True}, "xla"),
    ({"precision": "mixed_float16"}, "precision"),
])
def test_tf_ps_refuses_what_it_cannot_do(hparams, named):
    cfg = TrainConfig.from_mapping(hparams)
    with pytest.raises(ValueError, match=f"hparams {named}: not under tf-ps"):
        cfg.check_strategy("tf-ps")
    if named in ("xla", "precision"):  # Horovod and tf-collective take these
        cfg.check_strategy("horovod")
    TrainConfig().check_strategy("tf-ps")  # the defaults train
