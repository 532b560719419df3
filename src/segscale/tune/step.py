"""One step of the GreScale guideline loop: ``python -m segscale.tune.step``.

Three modes (docs/guideline.md):

* plan iteration 0 (``--start``): the GreScale defaults, or the first action applied::

    python -m segscale.tune.step --start --hparams JSON --gpus N --config JSON --out start.json

* score an iteration and decide the next (``--metrics``)::

    python -m segscale.tune.step --metrics ITER/metrics.json --baseline BASELINE/metrics.json \\
        [--previous PREV_DECISION.json] --hparams JSON --gpus N --config JSON \\
        --out ITER/decision.json

  ``--previous`` is the decision (or start plan) the iteration was trained from; without it
  the iteration counts as iteration 0 trained with ``--hparams`` as the defaults.

* the iteration table of a finished loop (thesis tables 6.1-6.10)::

    python -m segscale.tune.step --table FINAL_DECISION.json --out iterations.csv

``--hparams`` and ``--config`` take a JSON object or ``@file.json``. Outputs are written
atomically. Exit 0 on success, 2 on bad input, with a message naming the file or key.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segscale import cli
from segscale.fileio import json_object_arg, read_json, write_json, write_text
from segscale.logs import configure
from segscale.train.config import TrainConfig
from segscale.tune.guideline import (
    DEFAULTS,
    Decision,
    GuidelineConfig,
    GuidelineState,
    next_step,
    scores_from_metrics,
    start,
)

log = logging.getLogger(__name__)

# Recorded beside the compared metrics, so the iteration table has the thesis's columns.
TABLE_METRICS = ("dice", "pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")


@dataclass(frozen=True)
class StepInputs:
    """Everything one ``--metrics`` step reads (paths are for messages and the record)."""

    metrics: Path
    baseline: Path
    previous: Path | None
    hparams: Mapping[str, Any]
    gpus: int
    config: GuidelineConfig
    out: Path


def _read_object(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = read_json(path)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{what}: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {path}: expected a JSON object")
    return doc


def _scores(path: Path, what: str, config: GuidelineConfig) -> dict[str, float]:
    doc = _read_object(path, what)
    try:
        return scores_from_metrics(doc, config.metrics, TABLE_METRICS)
    except ValueError as err:
        raise ValueError(f"{what} {path}: {err}") from None


def _canonical(hparams: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return TrainConfig.from_mapping(hparams).to_dict()
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def _trained_state(inputs: StepInputs) -> GuidelineState:
    """The plan the scored iteration was trained from, checked against ``--hparams``.

    Raises:
        ValueError: the previous decision is done, malformed, for another GPU count, or
            planned other hparams than ``--hparams`` (a wiring mistake).
    """
    if inputs.previous is None:
        return GuidelineState(n_gpus=inputs.gpus, iteration=0, action_index=None, streak=0,
                              validating=False, validations=0, base=inputs.hparams,
                              overrides={}, seed=inputs.config.seed, label=DEFAULTS)
    prev = _read_object(inputs.previous, "--previous")
    where = f"--previous {inputs.previous}"
    if prev.get("done"):
        raise ValueError(f"{where}: the loop is already done ({prev.get('reason')}); "
                         "there is no iteration to score")
    try:
        state = GuidelineState.from_dict(prev["state"])
    except KeyError:
        raise ValueError(f"{where}: no 'state'") from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if state.n_gpus != inputs.gpus:
        raise ValueError(f"{where}: planned for {state.n_gpus} GPUs, --gpus is {inputs.gpus}")
    planned = _canonical(state.hparams, where)
    given = _canonical(inputs.hparams, "--hparams")
    differ = sorted(k for k in planned if planned[k] != given[k])
    if differ:
        details = ", ".join(f"{k}: planned {planned[k]!r}, given {given[k]!r}" for k in differ)
        raise ValueError(f"--hparams differ from the plan in {inputs.previous}: {details}")
    if prev.get("config") not in (None, inputs.config.to_dict()):
        log.warning("guideline settings changed since %s; deciding with the new ones",
                    inputs.previous)
    return state


def decide(inputs: StepInputs) -> Decision:
    """Score the iteration and decide the next one (no file written).

    Raises:
        ValueError: any bad input; the message names the file or key.
    """
    scores = _scores(inputs.metrics, "--metrics", inputs.config)
    baseline = _scores(inputs.baseline, "--baseline", inputs.config)
    state = _trained_state(inputs)
    try:
        return next_step(state, scores, baseline, inputs.config)
    except ValueError as err:
        raise ValueError(f"{inputs.metrics} vs {inputs.baseline}: {err}") from None


def iteration_table(decision: Mapping[str, Any]) -> str:
    """CSV of a loop's iterations plus a ``baseline`` row (thesis tables 6.1-6.10 shape).

    Columns: ``iteration``, ``action``, ``seed``, the recorded metrics, ``reached``,
    ``improved``, ``changes`` (JSON of the guideline's hparams overrides).

    Raises:
        ValueError: not a decision with a state and a comparison.
    """
    try:
        state = GuidelineState.from_dict(decision["state"])
        baseline = decision["comparison"]["baseline"]
    except (KeyError, TypeError):
        raise ValueError("not a scored decision (no 'state' or 'comparison')") from None
    names = [m for m in TABLE_METRICS if m in baseline]
    names += [m for m in baseline if m not in names]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["iteration", "action", "seed", *names, "reached", "improved", "changes"])
    base = dict(state.base)
    for rec in state.history:
        changes = {k: v for k, v in rec.hparams.items() if base.get(k) != v or k not in base}
        writer.writerow([rec.iteration, rec.action, rec.seed,
                         *(rec.scores.get(m, "") for m in names), rec.reached, rec.improved,
                         json.dumps(changes, sort_keys=True)])
    writer.writerow(["", "baseline", "", *(baseline[m] for m in names), "", "", ""])
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.tune.step", __doc__)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--start", action="store_true", help="plan iteration 0")
    mode.add_argument("--metrics", type=Path, help="metrics.json of the iteration to score")
    mode.add_argument("--table", type=Path, help="final decision.json -> iterations CSV")
    p.add_argument("--baseline", type=Path, help="metrics.json of the 1-GPU baseline")
    p.add_argument("--previous", type=Path,
                   help="decision.json (or start plan) the iteration was trained from")
    p.add_argument("--hparams", help="hparams the iteration trained with (JSON or @file)")
    p.add_argument("--gpus", type=int, help="GPUs (ranks) of the tuned runs")
    p.add_argument("--config", default="{}", help="guideline settings (JSON or @file)")
    p.add_argument("--out", type=Path, required=True, help="file to write")
    p.add_argument("--log-level", default="INFO")
    return p


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.table is not None:
        decision = _read_object(args.table, "--table")
        try:
            text = iteration_table(decision)
        except ValueError as err:
            raise ValueError(f"--table {args.table}: {err}") from None
        write_text(args.out, text)
        log.info("%s: %d rows", args.out, text.count("\n") - 1)
        return
    if args.hparams is None or args.gpus is None:
        parser.error("--hparams and --gpus are required with --start and --metrics")
    if args.gpus < 1:
        raise ValueError(f"--gpus: must be >= 1, got {args.gpus}")
    config = GuidelineConfig.from_mapping(json_object_arg(args.config, "--config"))
    hparams = json_object_arg(args.hparams, "--hparams")
    if args.start:
        try:
            decision = start(hparams, args.gpus, config)
        except ValueError as err:
            raise ValueError(f"--hparams: {err}") from None
        payload = decision.to_dict(config)
        payload["inputs"] = {"hparams": hparams}
    else:
        if args.baseline is None:
            parser.error("--baseline is required with --metrics")
        inputs = StepInputs(args.metrics, args.baseline, args.previous, hparams, args.gpus,
                            config, args.out)
        decision = decide(inputs)
        payload = decision.to_dict(config)
        payload["inputs"] = {"metrics": str(args.metrics), "baseline": str(args.baseline),
                             "previous": None if args.previous is None else str(args.previous)}
    write_json(args.out, payload)
    log.info("%s: %s%s (%s) %s", args.out, "done" if decision.done else "next: ",
             "" if decision.done else decision.action, decision.reason, decision.message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level)
    try:
        _run(args, parser)
    except ValueError as err:
        log.error("tune_step: %s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
