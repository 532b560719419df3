"""How the distributed strategies compare (``strategies.png``): per (dataset, arch), speedup,
efficiency, test Dice and network traffic per GPU rank against GPUs, one line per strategy,
and tf-ps's traffic per parameter server beside it.

Every strategy is measured against its own 1-GPU run (scaling.csv, policy ``none``: the
baseline policy, so warmups do not blur the comparison). The network row is the resource
sampler's bytes sent + received per rank and per training second, the system metric Shi et
al. (2019) read to explain why ring-allreduce scales better than a parameter server. The
sampler's counters are the host's: a server alone on its node measures its own traffic; on
a shared host (the local emulation) every rank sees the host's total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segscale.report.runs import with_strategy
from segscale.report.style import (
    BASELINE_COLOR,
    combos,
    dodge,
    empty_panel,
    finish,
    gpu_axis,
    grid,
    panel_title,
    select,
    strategy_order,
    strategy_style,
)
from segscale.study import BASELINE_POLICY, OK

FIGURE = "strategies"
ROWS = (("speedup", "speedup (vs its own 1 GPU)"), ("efficiency", "efficiency"),
        ("dice", "test Dice"), ("net_mb_per_s", "network per rank (MB/s)"))
SERVER_ROLE, SERVER_LABEL = "ps", "tf-ps, per parameter server"
SERVER_STYLE = {"color": "black", "marker": "P", "ls": "-."}


def network_per_rank(resources: pd.DataFrame, role: str = "worker") -> pd.DataFrame:
    """Mean MB/s sent + received per rank of ``role`` (``worker``: the GPU ranks of every
    strategy; ``ps``: tf-ps's parameter servers) of each run, from the sampler's counters
    (their increase over the run's sampled time). Tables without a ``role`` column hold
    workers only."""
    cols = ["dataset", "arch", "strategy", "policy", "gpus", "repeat", "net_mb_per_s"]
    needed = {"time_s", "net_sent_bytes", "net_recv_bytes", "rank"}
    if resources.empty or not needed <= set(resources):
        return pd.DataFrame(columns=cols)
    res = with_strategy(resources)
    roles = res["role"] if "role" in res else pd.Series("worker", index=res.index)
    res = res[roles.fillna("worker").eq(role)]
    keys = ["dataset", "arch", "strategy", "policy", "gpus", "repeat", "rank"]
    rows = []
    for key, d in res.groupby(keys):
        d = d.sort_values("time_s")
        total = d["net_sent_bytes"].astype(float) + d["net_recv_bytes"].astype(float)
        span = float(d["time_s"].iloc[-1] - d["time_s"].iloc[0])
        grew = float(total.iloc[-1] - total.iloc[0])
        rows.append((*key, grew / span / 1e6 if span > 0 and grew >= 0 else np.nan))
    per_rank = pd.DataFrame(rows, columns=[*keys, "net_mb_per_s"])
    return per_rank.groupby(cols[:-1], as_index=False)["net_mb_per_s"].mean()


def _series(row: str, sc: pd.DataFrame, runs: pd.DataFrame, net: pd.DataFrame,
            strategy: str) -> pd.DataFrame:
    """(gpus, mean, std) of one row's quantity for one strategy, policy none."""
    if row in ("speedup", "efficiency"):
        d = sc[sc["strategy"].eq(strategy) & sc["policy"].eq(BASELINE_POLICY)]
        return pd.DataFrame({"gpus": d["gpus"], "mean": d[row], "std": d[f"{row}_std"]})
    source = runs if row == "dice" else net
    if source.empty or row not in source:
        return pd.DataFrame(columns=["gpus", "mean", "std"])
    d = source[source["strategy"].eq(strategy) & source["policy"].eq(BASELINE_POLICY)]
    if row == "dice":
        d = d[d["status"].eq(OK)]
    g = d.groupby("gpus")[row].agg(["mean", "std"]).reset_index()
    return g


def fig_strategies(runs: pd.DataFrame, scaling: pd.DataFrame, resources: pd.DataFrame):
    """The comparison figure (empty panels say why when a table has nothing to show)."""
    runs, scaling = with_strategy(runs), with_strategy(scaling)
    net = network_per_rank(resources)
    servers = network_per_rank(resources, SERVER_ROLE)
    panels = combos(runs)
    fig, axes = grid(len(ROWS), max(len(panels), 1), width=4.4, height=2.8, sharex="col")
    if not panels:
        for r in range(len(ROWS)):
            empty_panel(axes[r, 0], "no runs in the runs table")
    for c, (ds, arch) in enumerate(panels):
        sc, rn, nt = select(scaling, ds, arch), select(runs, ds, arch), select(net, ds, arch)
        strategies = strategy_order(rn["strategy"].unique())
        gpus = sorted(set(rn["gpus"].astype(int)))
        axes[0, c].set_title(panel_title(ds, arch))
        for r, (row, label) in enumerate(ROWS):
            ax = axes[r, c]
            drawn = False
            for i, strategy in enumerate(strategies):
                d = _series(row, sc, rn, nt, strategy).dropna(subset=["mean"])
                if d.empty:
                    continue
                style = strategy_style(strategy)
                ax.errorbar(dodge(d["gpus"], i, len(strategies)), d["mean"],
                            yerr=np.nan_to_num(d["std"].to_numpy(float)), capsize=3, lw=1.8,
                            ms=6, label=strategy, color=style["color"],
                            marker=style["marker"], ls=style["ls"], zorder=3)
                drawn = True
            if row == "net_mb_per_s":
                d = _series(row, sc, rn, select(servers, ds, arch), "tf-ps").dropna(
                    subset=["mean"])
                if not d.empty:
                    ax.errorbar(d["gpus"], d["mean"],
                                yerr=np.nan_to_num(d["std"].to_numpy(float)), capsize=3,
                                lw=1.4, ms=6, label=SERVER_LABEL, zorder=3, **SERVER_STYLE)
                    drawn = True
            if not drawn:
                empty_panel(ax, f"no {label.split(' (')[0]}\nfor policy {BASELINE_POLICY}")
                continue
            if row in ("speedup", "efficiency") and gpus:
                xs = np.array(gpus, float)
                ax.plot(xs, xs if row == "speedup" else np.ones_like(xs), ls=":",
                        color=BASELINE_COLOR, lw=1.2, label="ideal")
            ax.set_ylabel(label)
            gpu_axis(ax, gpus)
        axes[-1, c].set_xlabel("GPUs")
    finish(fig, axes, f"Distributed strategies compared (policy {BASELINE_POLICY}; mean ± sd "
           "over ok repeats; each strategy against its own 1-GPU run)")
    return fig
