"""Predict scaling (``python -m segscale.scaling``): the alpha-beta model of synchronous
data-parallel training, calibrated from this workflow's measurements (1-GPU runs, allreduce
microbenchmark), per configured cluster, for N = 1 .. --max-gpus.

Writes ``--out`` (predicted_scaling.csv: predicted, measured and published speedups per
cluster, dataset, arch and GPU count), ``--record`` (JSON: the calibration, link figures
and their sources, the inputs and what produced them) and the figure. docs/prediction.md
describes the model.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pandas as pd

from segscale import cli
from segscale.fileio import atomic_path, json_object_arg, write_json
from segscale.scaling.calibrate import fit_per_n, read_bench
from segscale.scaling.clusters import Workload, clusters_from_config
from segscale.scaling.predict import draw, gpu_counts, predict
from segscale.study import BASELINE_POLICY

log = logging.getLogger("segscale.scaling")

# The published values shipped with the package (read as data: no report import).
PUBLISHED = Path(__file__).resolve().parents[1] / "report" / "published" / "thesis.csv"


def made_by() -> str:
    from segscale import __version__
    from segscale.provenance import git_revision

    return f"segscale {__version__} (git {git_revision() or 'unknown'})"


def read_optional(path: str | None) -> pd.DataFrame | None:
    if not path:
        return None
    return pd.read_csv(path)


def build_parser():
    p = cli.parser("segscale.scaling", __doc__)
    p.add_argument("--clusters", required=True, help="JSON: the config's clusters section")
    p.add_argument("--workloads", default="[]",
                   help="JSON list: the swept (dataset, arch) workloads of measuring clusters")
    p.add_argument("--runs", help="runs.csv (1-GPU compute per step)")
    p.add_argument("--scaling", help="scaling.csv (measured points)")
    p.add_argument("--bench", nargs="*", default=[], help="allreduce benchmark CSVs")
    p.add_argument("--published", default=str(PUBLISHED), help="published values CSV")
    p.add_argument("--max-gpus", type=int, default=512)
    p.add_argument("--per-decade", type=int, default=8)
    p.add_argument("--extra-gpus", type=int, nargs="*", default=[18])
    p.add_argument("--policy", default=BASELINE_POLICY,
                   help="policy whose runs are measured points")
    p.add_argument("--gpus-per-node", type=int, default=1,
                   help="default gpus_per_node of clusters that do not say")
    p.add_argument("--out", required=True)
    p.add_argument("--record", help="JSON record of the calibration and inputs")
    p.add_argument("--figure", help="PNG figure")
    p.add_argument("--figure-svg", help="SVG figure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        clusters = clusters_from_config(json_object_arg(args.clusters, "--clusters"),
                                        args.gpus_per_node)
        workloads = [Workload.from_mapping(w) for w in json.loads(args.workloads)]
        bench = read_bench(args.bench) if args.bench else None
        published = read_optional(args.published)
        runs, scaling = read_optional(args.runs), read_optional(args.scaling)
        extra = [*args.extra_gpus]
        for df in (scaling, bench):
            if df is not None and not df.empty:
                extra += [int(n) for n in df["gpus" if "gpus" in df else "ranks"].unique()]
        gpus = gpu_counts(args.max_gpus, args.per_decade, extra)
        table, record = predict(clusters, workloads, runs, scaling, bench, published, gpus,
                                args.policy)
    except (ValueError, OSError, KeyError) as err:
        sys.stderr.write(f"segscale.scaling: {err}\n")
        return 1
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    producer = made_by()
    if args.record:
        write_json(args.record, {
            "produced_by": producer, "clusters": record, "gpus": gpus, "policy": args.policy,
            "inputs": {"runs": args.runs, "scaling": args.scaling, "bench": args.bench,
                       "published": args.published},
            "per_n_fits": fit_per_n(bench).to_dict("records") if bench is not None else [],
            "model": "step = compute + allreduce (ring/hierarchical alpha-beta, fusion "
                     "messages); epoch(N) = steps(1)/N x step(N); docs/prediction.md"})
    if args.figure or args.figure_svg:
        draw(table, args.figure, args.figure_svg, producer)
    for row in table[table["published_speedup"].notna()].itertuples():
        log.info("%s %s/%s at %d GPUs: predicted %.1fx, published %.1fx", row.cluster,
                 row.dataset, row.arch, row.gpus, row.predicted_speedup, row.published_speedup)
    return 0
