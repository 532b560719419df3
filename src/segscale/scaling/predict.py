"""The prediction table (``predicted_scaling.csv``) and its figure.

One row per (cluster, dataset, arch, gpus): the modelled step (compute + allreduce), epoch
time, speedup and efficiency; where this workflow ran that configuration on that cluster
(``compute: measured``), the measured epoch time and speedup and the residuals
(measured - predicted); where the published study has a value (a cluster with
``published:``), the published speedup, efficiency and epoch time and the gap
(published - predicted). Published values are only compared with, never fitted to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from segscale.scaling import archs, model
from segscale.scaling.calibrate import calibrate_links, compute_per_step, of_modelled_strategy
from segscale.scaling.clusters import Cluster, Workload

log = logging.getLogger("segscale.scaling")

COLUMNS = [
    "cluster", "dataset", "arch", "gpus", "nodes", "allreduce", "params", "gradient_bytes",
    "messages", "compute_source", "compute_step_s", "allreduce_step_s", "step_s",
    "comm_fraction", "steps_per_epoch", "predicted_epoch_s", "predicted_speedup",
    "predicted_efficiency", "measured_epoch_s", "measured_speedup", "measured_efficiency",
    "residual_speedup", "residual_epoch_rel", "published_speedup", "published_efficiency",
    "published_epoch_s", "gap_speedup", "alpha_intra_s", "beta_intra_bytes_per_s",
    "alpha_inter_s", "beta_inter_bytes_per_s",
]


def trainable_params(w: Workload) -> int:
    if w.params:
        return int(w.params)
    return archs.param_counts(w.arch, w.channels, w.classes, w.model)["trainable"]


def published_value(pub: pd.DataFrame, source: str, dataset: str, arch: str, gpus: int,
                    quantity: str) -> float:
    """A published number for (dataset or 'any', arch, gpus, quantity), NaN when none."""
    if pub is None or pub.empty:
        return math.nan
    rows = pub[(pub["source"] == source) & (pub["arch"] == arch)
               & (pub["dataset"].isin([dataset, "any"])) & (pub["quantity"] == quantity)
               & (pd.to_numeric(pub["gpus"], errors="coerce") == gpus)
               & (pub["policy"].fillna("none").isin(["none", ""]))]
    if rows.empty:
        return math.nan
    exact = rows[rows["dataset"] == dataset]
    return float((exact if not exact.empty else rows)["value"].iloc[0])


def hours_to_s(value: float, unit: str = "h") -> float:
    return value * 3600.0


def published_compute(w: Workload, pub: pd.DataFrame, source: str) -> tuple[float, float]:
    """(compute per step, 1-GPU epoch s) from the published 1-GPU training time.

    Raises:
        ValueError: no published 1-GPU train_time, or the workload lacks epochs.
    """
    hours = published_value(pub, source, w.dataset, w.arch, 1, "train_time")
    if math.isnan(hours) or not w.epochs:
        raise ValueError(f"{source}: no 1-GPU train_time for {w.dataset}/{w.arch} "
                         "(or the workload has no epochs)")
    epoch = hours_to_s(hours) / w.epochs
    return epoch / w.steps_per_epoch, epoch


def nominal_compute(w: Workload, cluster: Cluster) -> float:
    """3 x forward FLOPs x per-GPU batch / (peak FLOP/s x utilisation)."""
    flops = archs.forward_flops(w.arch, w.channels, w.classes, w.size, w.model)
    return (archs.TRAIN_FLOPS_PER_FORWARD * flops * w.batch_size
            / (cluster.peak_flops * cluster.utilization))


def curve(cluster: Cluster, w: Workload, compute_step_s: float, steps_one: float,
          gpus: Sequence[int], compute_source: str) -> list[dict]:
    """The model's rows for one workload on one cluster at every N in ``gpus``."""
    intra, inter = cluster.links["intra"], cluster.links["inter"]
    params = trainable_params(w)
    nbytes = model.gradient_bytes(params, w.fp16_allreduce)
    epoch_one = model.epoch_s(steps_one, compute_step_s, 1)
    rows = []
    for n in gpus:
        comm = model.allreduce_s(nbytes, n, cluster.gpus_per_node, intra, inter,
                                 cluster.allreduce, cluster.fusion_bytes)
        step = compute_step_s + comm
        epoch = model.epoch_s(steps_one, step, n)
        s = model.speedup(epoch_one, epoch)
        rows.append({
            "cluster": cluster.name, "dataset": w.dataset, "arch": w.arch, "gpus": int(n),
            "nodes": model.nodes_spanned(n, cluster.gpus_per_node),
            "allreduce": cluster.allreduce, "params": params, "gradient_bytes": nbytes,
            "messages": model.messages(nbytes, cluster.fusion_bytes) if n > 1 else 0,
            "compute_source": compute_source, "compute_step_s": compute_step_s,
            "allreduce_step_s": comm, "step_s": step, "comm_fraction": comm / step,
            "steps_per_epoch": steps_one / n, "predicted_epoch_s": epoch,
            "predicted_speedup": s, "predicted_efficiency": model.efficiency(s, n),
            "alpha_intra_s": intra.alpha, "beta_intra_bytes_per_s": intra.beta,
            "alpha_inter_s": inter.alpha, "beta_inter_bytes_per_s": inter.beta})
    return rows


def measured_points(scaling: pd.DataFrame | None, policy: str) -> pd.DataFrame:
    """(dataset, arch, gpus) -> measured epoch time, speedup, efficiency (scaling.csv)."""
    cols = ["dataset", "arch", "gpus", "measured_epoch_s", "measured_speedup",
            "measured_efficiency"]
    if scaling is None or scaling.empty:
        return pd.DataFrame(columns=cols)
    rows = scaling[(scaling["policy"] == policy) & of_modelled_strategy(scaling)]
    return rows.rename(columns={"time_per_epoch_mean_s": "measured_epoch_s",
                                "speedup": "measured_speedup",
                                "efficiency": "measured_efficiency"})[cols]


def predict(clusters: Mapping[str, Cluster], measured_workloads: Sequence[Workload],
            runs: pd.DataFrame | None, scaling: pd.DataFrame | None, bench: pd.DataFrame | None,
            published: pd.DataFrame | None, gpus: Sequence[int], policy: str = "none"
            ) -> tuple[pd.DataFrame, dict]:
    """The prediction table and a record of how every cluster was calibrated."""
    record: dict = {}
    rows: list[dict] = []
    per_step = compute_per_step(runs, policy) if runs is not None and not runs.empty \
        else compute_per_step(pd.DataFrame(columns=["status", "gpus", "policy",
                                                    "steps_per_epoch", "time_per_epoch_s",
                                                    "dataset", "arch"]))
    measured = measured_points(scaling, policy)
    for name, cluster in clusters.items():
        rec = record.setdefault(name, {"description": cluster.description,
                                       "gpus_per_node": cluster.gpus_per_node,
                                       "allreduce": cluster.allreduce,
                                       "fusion_bytes": cluster.fusion_bytes,
                                       "compute": cluster.compute, "sources": dict(
                                           cluster.sources), "skipped": []})
        if cluster.calibrated:
            if bench is None or bench.empty:
                raise ValueError(f"cluster {name}: links 'calibrated' but no allreduce "
                                 "benchmark tables were given")
            intra, inter, fit = calibrate_links(bench, cluster.gpus_per_node)
            cluster = cluster.with_links(intra, inter)
            rec["links"] = {"calibrated": fit}
        else:
            rec["links"] = {k: {"alpha_s": v.alpha, "beta_bytes_per_s": v.beta}
                            for k, v in cluster.links.items()}
        if cluster.compute == "measured":
            for w in measured_workloads:
                hit = per_step[(per_step["dataset"] == w.dataset) & (per_step["arch"] == w.arch)]
                if hit.empty:
                    rec["skipped"].append(f"{w.dataset}/{w.arch}: no ok 1-GPU run "
                                          f"(policy {policy})")
                    continue
                r = hit.iloc[0]
                w = Workload(**{**w.__dict__, "fp16_allreduce": bool(r["fp16_allreduce"])})
                found = curve(cluster, w, float(r["compute_step_s"]),
                              float(r["steps_per_epoch"]), gpus, "measured 1-GPU runs")
                rows += _join_measured(found, measured)
            continue
        for w in cluster.workloads:
            if cluster.compute == "published":
                step, _ = published_compute(w, published, cluster.published)
                source = f"published 1-GPU time ({cluster.published})"
            else:
                step = nominal_compute(w, cluster)
                source = f"nominal FLOPs (utilisation {cluster.utilization})"
            found = curve(cluster, w, step, w.steps_per_epoch, gpus, source)
            if cluster.published:
                for row in found:
                    _add_published(row, published, cluster.published, w)
            rows += found
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return table, record


def _join_measured(found: list[dict], measured: pd.DataFrame) -> list[dict]:
    for row in found:
        hit = measured[(measured["dataset"] == row["dataset"])
                       & (measured["arch"] == row["arch"]) & (measured["gpus"] == row["gpus"])]
        if hit.empty:
            continue
        m = hit.iloc[0]
        row.update(measured_epoch_s=m["measured_epoch_s"],
                   measured_speedup=m["measured_speedup"],
                   measured_efficiency=m["measured_efficiency"],
                   residual_speedup=m["measured_speedup"] - row["predicted_speedup"],
                   residual_epoch_rel=m["measured_epoch_s"] / row["predicted_epoch_s"] - 1)
    return found


def _add_published(row: dict, pub: pd.DataFrame, source: str, w: Workload) -> None:
    n = row["gpus"]
    s = published_value(pub, source, w.dataset, w.arch, n, "speedup")
    e = published_value(pub, source, w.dataset, w.arch, n, "efficiency")
    hours = published_value(pub, source, w.dataset, w.arch, n, "train_time")
    row.update(published_speedup=s, published_efficiency=e,
               published_epoch_s=hours_to_s(hours) / w.epochs if w.epochs else math.nan,
               gap_speedup=s - row["predicted_speedup"])


def gpu_counts(largest: int, per_decade: int, extra: Sequence[int]) -> list[int]:
    return model.gpu_grid(largest, per_decade, tuple(int(e) for e in extra))


def draw(table: pd.DataFrame, path_png: str, path_svg: str | None = None,
         made_by: str = "segscale") -> None:
    """Speedup (top) and efficiency (bottom) against GPUs, one column per architecture:
    predicted curves per (cluster, dataset), measured points (filled circles), published
    points (stars), ideal speedup (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segscale.fileio import atomic_path

    arch_names = sorted(table["arch"].unique()) or ["none"]
    fig, axes = plt.subplots(2, len(arch_names), figsize=(5.5 * len(arch_names), 8),
                             squeeze=False, sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for col, arch in enumerate(arch_names):
        top, bottom = axes[0, col], axes[1, col]
        sub = table[table["arch"] == arch]
        for i, ((cluster, dataset), g) in enumerate(sub.groupby(["cluster", "dataset"])):
            c = colours[i % len(colours)]
            g = g.sort_values("gpus")
            label = f"{cluster} / {dataset}"
            top.plot(g["gpus"], g["predicted_speedup"], "-", color=c, label=f"{label} (model)")
            bottom.plot(g["gpus"], g["predicted_efficiency"], "-", color=c)
            m = g.dropna(subset=["measured_speedup"])
            if not m.empty:
                top.plot(m["gpus"], m["measured_speedup"], "o", color=c,
                         label=f"{label} (measured)")
                bottom.plot(m["gpus"], m["measured_efficiency"], "o", color=c)
            p = g.dropna(subset=["published_speedup"])
            if not p.empty:
                top.plot(p["gpus"], p["published_speedup"], "*", ms=12, color=c, mec="k",
                         label=f"{label} (published)")
                bottom.plot(p["gpus"], p["published_speedup"] / p["gpus"], "*", ms=12,
                            color=c, mec="k")
        if not sub.empty:
            n = np.array(sorted(sub["gpus"].unique()), float)
            top.plot(n, n, ":", color="grey", label="ideal")
        top.set(xscale="log", yscale="log", title=f"{arch}", ylabel="speedup")
        bottom.set(xscale="log", xlabel="GPUs", ylabel="efficiency", ylim=(0, 1.05))
        top.legend(fontsize=7)
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Predicted scaling (alpha-beta model) with measured and published points")
    fig.tight_layout()
    for path, fmt in ((path_png, "png"), (path_svg, "svg")):
        if path:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata={"Software": made_by} if fmt == "png"
                            else {"Creator": made_by}, bbox_inches="tight")
    plt.close(fig)
