"""Split patients (volumes) into train/val/test. Never slices: a patient's slices are
strongly correlated, so slice-level splits leak test anatomy into training."""

from __future__ import annotations

import numpy as np

from segscale import cli
from segscale.data.params import SplitParams

SPLITS = ("train", "val", "test")


def split_patients(patients: list[str], params: SplitParams) -> dict[str, list[str]]:
    """Assign each patient to exactly one split, reproducibly for a given seed.

    Patients are sorted first, so the result does not depend on listing order. Split sizes
    are ``round(ratio * n)`` for val and test, the rest train; a split with a ratio > 0 gets
    at least one patient when there are enough patients to keep train non-empty.

    Raises:
        ValueError: duplicate patient ids, or too few patients to give train one.
    """
    ids = sorted(patients)
    if len(set(ids)) != len(ids):
        dupes = sorted({p for p in ids if ids.count(p) > 1})
        raise ValueError(f"duplicate patient ids: {dupes}")
    n = len(ids)
    sizes = {}
    for name in ("val", "test"):
        ratio = getattr(params, name)
        sizes[name] = max(1, round(ratio * n)) if ratio > 0 else 0
    sizes["train"] = n - sizes["val"] - sizes["test"]
    if sizes["train"] < 1:
        raise ValueError(f"{n} patient(s) cannot fill train/val/test with ratios "
                         f"{params.train}/{params.val}/{params.test}")
    order = np.random.default_rng(params.seed).permutation(n)
    shuffled = [ids[i] for i in order]
    out, start = {}, 0
    for name in ("test", "val", "train"):
        out[name] = sorted(shuffled[start:start + sizes[name]])
        start += sizes[name]
    return {name: out[name] for name in SPLITS}


def build_parser():
    parser = cli.parser("segscale.data.split", __doc__)
    parser.add_argument("--inspect", required=True, help="inspect.json of the dataset")
    parser.add_argument("--params", required=True, help="the dataset's config section as JSON")
    parser.add_argument("--name", required=True, help="dataset name in the config")
    parser.add_argument("--out", required=True, help="split.json to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m segscale.data.split --inspect inspect.json --params JSON --out F``."""
    import json
    import logging

    from segscale.data.params import DatasetParams
    from segscale.fileio import read_json, write_json
    from segscale.logs import configure

    args = build_parser().parse_args(argv)
    configure()
    log = logging.getLogger(__name__)
    try:
        params = DatasetParams.from_mapping(args.name, json.loads(args.params))
        report = read_json(args.inspect)
        splits = split_patients([c["patient"] for c in report["cases"]], params.split)
    except (ValueError, FileNotFoundError, KeyError) as err:
        log.error("cannot split %s: %s", args.inspect, err)
        return 1
    write_json(args.out, {"dataset": args.name, "params": params.split.__dict__,
                          "counts": {k: len(v) for k, v in splits.items()}, "patients": splits})
    log.info("split by patient: %s", {k: len(v) for k, v in splits.items()})
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
