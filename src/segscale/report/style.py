"""How every figure looks: policy colours and markers, panel helpers, shared legends.

One place for the look, so each figure in :mod:`segscale.report.figures` only says what it
draws. Colour-blind-safe palette; one colour and marker per policy, in the study's order
(:data:`segscale.study.POLICIES`).
"""

from __future__ import annotations

import math
import zlib

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from segscale.study import OK, POLICIES, STATUSES, STRATEGIES  # noqa: E402

PUBLISHED_LABEL = "published (Guedria thesis)"
_CB = sns.color_palette("colorblind")
# in the order of segscale.study.POLICIES (none, constant, gradual, grescale)
POLICY_COLORS = dict(zip(POLICIES, (_CB[0], _CB[1], _CB[2], _CB[4]), strict=True))
POLICY_MARKERS = dict(zip(POLICIES, ("o", "s", "^", "D"), strict=True))
BASELINE_COLOR = "0.35"
ARCH_NAMES = {"unet": "U-Net", "fcn": "FCN"}
STYLE_RC = {"svg.fonttype": "none", "svg.hashsalt": "segscale", "axes.titleweight": "bold",
            "figure.dpi": 100, "savefig.dpi": 150, "legend.frameon": False}


# in the order of segscale.study.STRATEGIES; strategy_style draws any further one
STRATEGY_STYLES = dict(zip(STRATEGIES, ({"color": _CB[0], "marker": "o", "ls": "-"},
                                        {"color": _CB[3], "marker": "s", "ls": "--"},
                                        {"color": _CB[2], "marker": "^", "ls": ":"})))


def strategy_style(strategy: str) -> dict:
    extra = sns.color_palette("dark")
    return STRATEGY_STYLES.get(strategy, {"color": extra[zlib.crc32(strategy.encode())
                                                        % len(extra)], "marker": "v", "ls": ":"})


def strategy_order(strategies) -> list[str]:
    known = [s for s in STRATEGIES if s in set(strategies)]
    return known + sorted(set(strategies) - set(STRATEGIES))


def apply_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9, rc=STYLE_RC)


def policy_order(policies) -> list[str]:
    known = [p for p in POLICIES if p in set(policies)]
    return known + sorted(set(policies) - set(POLICIES))


def policy_style(policy: str) -> dict:
    extra = sns.color_palette("colorblind")[5:] + sns.color_palette("dark")
    color = POLICY_COLORS.get(policy, extra[zlib.crc32(policy.encode()) % len(extra)])
    return {"color": color, "marker": POLICY_MARKERS.get(policy, "v")}


def panel_title(dataset: str, arch: str) -> str:
    return f"{str(dataset).upper()} · {ARCH_NAMES.get(str(arch).lower(), arch)}"


def combos(df: pd.DataFrame) -> list[tuple[str, str]]:
    if df.empty:
        return []
    return sorted(set(zip(df["dataset"].astype(str), df["arch"].astype(str), strict=True)))


def select(df: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    if df.empty:
        return df
    return df[df["dataset"].astype(str).eq(dataset) & df["arch"].astype(str).eq(arch)]


def grid(nrows: int, ncols: int, width: float = 4.2, height: float = 3.3, sharex=False):
    fig, axes = plt.subplots(max(nrows, 1), max(ncols, 1), squeeze=False, layout="constrained",
                             figsize=(width * max(ncols, 1), height * max(nrows, 1) + 0.6),
                             sharex=sharex)
    return fig, axes


def wrap(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(max(n, 1) / cols), cols


def empty_panel(ax, message: str) -> None:
    """An annotated blank panel: the figure still exists and says why it has no data."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            fontsize=10, color="0.4", wrap=True)
    # tick_params, not set_xticks: a shared axis would lose its ticks in every panel
    ax.tick_params(axis="both", which="both", bottom=False, left=False,
                   labelbottom=False, labelleft=False)
    ax.grid(False)


def gpu_axis(ax, gpus) -> None:
    """Log2 GPU axis with a tick at every GPU count drawn."""
    ticks = sorted({int(g) for g in gpus if pd.notna(g) and g > 0}) or [1]
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlim(ticks[0] / 1.35, ticks[-1] * 1.35)
    ax.set_xlabel("GPUs (log scale)")


def dodge(x, i: int, n: int) -> np.ndarray:
    """Shift series ``i`` of ``n`` sideways on a log axis so error bars do not hide each other."""
    return np.asarray(x, float) * 2 ** (0.05 * (i - (n - 1) / 2))


def draw_series(ax, x, y, err, policy: str, i: int, n: int, label: str | None = None) -> None:
    style = policy_style(policy)
    ax.errorbar(dodge(x, i, n), y, yerr=np.nan_to_num(np.asarray(err, float)), capsize=3,
                lw=1.8, ms=6, label=label or policy, color=style["color"],
                marker=style["marker"], zorder=3)


def draw_published(ax, pts: pd.DataFrame, scale: float = 1.0, text=None) -> None:
    """Published values as black stars with their value written beside them.

    ``text`` turns a raw published value into the annotation (default: 3 significant digits).
    """
    text = text or "{:.3g}".format
    for row in pts.itertuples(index=False):
        y = row.value * scale
        ax.scatter([row.gpus], [y], marker="*", s=190, color="black", edgecolor="white",
                   linewidth=0.6, zorder=6, label=PUBLISHED_LABEL)
        ax.annotate(text(row.value), (row.gpus, y), textcoords="offset points", xytext=(7, -3),
                    fontsize=8, color="black")


def human_duration(seconds: float) -> str:
    """'21 h 40 min', '74 min', '45 s': how the thesis states its training times."""
    minutes = round(seconds / 60)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def finish(fig, axes, title: str, note: str = "") -> None:
    """Suptitle and one shared legend (policies first) under the panels."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    order = policy_order([lab for lab in handles if lab in POLICY_COLORS or lab.isidentifier()])
    labels = order + [lab for lab in handles if lab not in order]
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                   ncol=min(len(labels), 5))
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=12)


def excluded_note(runs: pd.DataFrame) -> str:
    """'excluded: 1 diverged, 1 failed' for runs that are not drawn, or ''."""
    if runs.empty:
        return ""
    counts = runs["status"].value_counts()
    parts = [f"{counts[s]} {s}" for s in STATUSES if s != OK if counts.get(s, 0)]
    return f"not drawn: {', '.join(parts)} run(s)" if parts else ""


def time_unit(seconds: float) -> tuple[str, float]:
    if not np.isfinite(seconds) or seconds < 120:
        return "s", 1.0
    return ("min", 60.0) if seconds < 2 * 3600 else ("h", 3600.0)


def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].eq(OK)] if not runs.empty else runs
