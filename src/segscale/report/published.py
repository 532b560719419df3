"""Published values to draw beside ours: the thesis's numbers, packaged as a tidy CSV.

``published/thesis.csv`` has one row per (source, dataset, arch, gpus, quantity) with its
unit; only the thesis's own rows are drawn (the papers' numbers are on other x ranges).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from segscale.report.runs import read_table

PUBLISHED_SOURCE = "guedria_thesis"
DATASET_ALIASES = {"task01_braintumour": "brats", "heart": "lasc", "task02_heart": "lasc"}
COLUMNS = ["dataset", "arch", "gpus", "quantity", "value"]


def default_published() -> Path:
    return Path(str(resources.files("segscale.report") / "published" / "thesis.csv"))


def load_published(path: Path | None) -> pd.DataFrame:
    """Published values in seconds/fractions, the thesis's only (others are off our x range)."""
    if path is None:
        return pd.DataFrame(columns=COLUMNS)
    pub = read_table(path)
    pub = pub[pub["source"].eq(PUBLISHED_SOURCE)].copy()
    hours = pub["unit"].eq("h")
    pub.loc[hours, "value"] = pub.loc[hours, "value"] * 3600.0
    return pub


def published_points(pub: pd.DataFrame, quantity: str, dataset: str, arch: str) -> pd.DataFrame:
    """Published rows for one panel: same quantity and arch, same dataset or ``any``."""
    if pub.empty:
        return pub
    ds = DATASET_ALIASES.get(str(dataset).lower(), str(dataset).lower())
    keep = (pub["quantity"].eq(quantity) & pub["arch"].str.lower().isin([str(arch).lower(), "any"])
            & pub["dataset"].str.lower().isin([ds, "any"]) & pub["gpus"].notna())
    return pub[keep]
