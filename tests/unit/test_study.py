"""The study's vocabulary is spelled once: the config schema, the workflow and every stage
use segscale.study."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from segscale import study

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_schema_policy_enum_is_the_study_policies():
    policies = SCHEMA["properties"]["sweep"]["properties"]["policies"]
    assert tuple(policies["items"]["enum"]) == study.POLICIES
    assert set(policies["default"]) <= set(study.POLICIES)


def test_baseline_and_pure_warmups_are_policies():
    assert study.BASELINE_POLICY in study.POLICIES
    assert study.TUNED_POLICY in study.POLICIES
    assert set(study.PURE_WARMUPS) < set(study.POLICIES)
    assert study.BASELINE_POLICY not in study.PURE_WARMUPS


@pytest.mark.parametrize(("policy", "gpus", "runs"), [
    ("none", 1, True), ("grescale", 1, True), ("constant", 1, False), ("gradual", 1, False),
    ("constant", 2, True), ("gradual", 18, True),
])
def test_pure_warmups_run_only_above_one_gpu(policy, gpus, runs):
    assert study.runs_on(policy, gpus) is runs


names = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)


@given(names, names, st.sampled_from(study.STRATEGIES), st.sampled_from(study.POLICIES),
       st.integers(1, 4096), st.integers(0, 99),
       st.sampled_from(["", "results/runs", "/abs/olute/root"]))
def test_run_dir_round_trips(dataset, arch, strategy, policy, gpus, repeat, root):
    path = "/".join(filter(None, [root, study.run_dir(dataset, arch, policy, gpus, repeat,
                                                      strategy)]))
    assert study.parse_run_dir(path) == {"dataset": dataset, "arch": arch,
                                         "strategy": strategy, "policy": policy,
                                         "gpus": gpus, "repeat": repeat}


@given(names, names, st.sampled_from(study.POLICIES), st.integers(1, 64), st.integers(0, 9))
def test_run_dirs_from_before_the_strategy_axis_are_horovod_runs(dataset, arch, policy, gpus,
                                                                  repeat):
    """Stored results keep their meaning: <dataset>/<arch>/<policy>/gpus<N>/rep<r>, as written
    before strategies were swept, below any root, is a Horovod run."""
    path = f"results/runs/{dataset}/{arch}/{policy}/gpus{gpus}/rep{repeat}"
    assert study.parse_run_dir(path) == {"dataset": dataset, "arch": arch,
                                         "strategy": study.DEFAULT_STRATEGY, "policy": policy,
                                         "gpus": gpus, "repeat": repeat}


def test_schema_strategy_enum_is_the_study_strategies():
    strategies = SCHEMA["properties"]["sweep"]["properties"]["strategies"]
    assert tuple(strategies["items"]["enum"]) == study.STRATEGIES
    assert strategies["default"] == [study.DEFAULT_STRATEGY]


def test_run_record_refuses_an_unknown_strategy():
    with pytest.raises(ValueError, match="'tf-mirrored' is not one of"):
        study.RunRecord("ok", "d", "unet", "none", 1, 0, 0, {}, 3, strategy="tf-mirrored")


@pytest.mark.parametrize("path", ["a/b/none/gpus0/rep0", "a/b/none/gpus2", "a/b/none/2/rep0",
                                  "a/b/none/gpus02/rep1x", ""])
def test_non_run_dirs_are_none(path):
    assert study.parse_run_dir(path) is None


def test_run_record_refuses_an_unknown_status():
    with pytest.raises(ValueError, match="'preempted' is not one of"):
        study.RunRecord("preempted", "d", "unet", "none", 1, 0, 0, {}, 3)


def test_run_record_has_the_same_keys_for_success_and_failure():
    ok = study.RunRecord(study.OK, "d", "unet", "none", 2, 0, 0, {"lr": 1}, 3, hosts=["h"])
    failed = study.RunRecord(study.FAILED, "d", "unet", "none", 2, 0, 0, {}, 3, error="E: x")
    assert ok.to_dict().keys() == failed.to_dict().keys()
    assert failed.to_dict()["error"] == "E: x" and failed.to_dict()["epochs_completed"] is None


# Literal spellings of the vocabulary that must not reappear outside segscale.study.
VOCABULARY = [r'"none", "constant", "gradual", "grescale"', r'"constant", "gradual"',
              r'"ok", "diverged", "failed"', r'"epoch", "lr", "loss"',
              r'gpus\(\?P<', r'\{policy\}/gpus\{n\}/rep\{r\}"']


@pytest.mark.parametrize("pattern", VOCABULARY)
def test_vocabulary_is_spelled_once(pattern):
    sources = [*(REPO / "src" / "segscale").rglob("*.py"), *(REPO / "workflow").rglob("*.smk")]
    found = [str(p.relative_to(REPO)) for p in sources if re.search(pattern, p.read_text())]
    assert found == ["src/segscale/study.py"]


def test_workflow_builds_the_sweep_from_the_study():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "from segscale import study" in common
    assert "study.POLICIES" in common and "study.runs_on" in common
