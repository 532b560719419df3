"""Cluster descriptions (the config's ``clusters:`` section) and the workloads they run.

A cluster says how its GPUs are packed (``gpus_per_node``), how the gradient is reduced
(``allreduce``: ring | hierarchical, ``fusion_bytes``), where its link figures come from
(``links``: ``calibrated`` = fitted to this workflow's allreduce microbenchmark, or nominal
``intra``/``inter`` alpha/beta with their sources) and where its compute per step comes from
(``compute``: ``measured`` = this workflow's 1-GPU runs, ``published`` = the published
1-GPU training time of each workload, ``nominal`` = forward FLOPs x 3 / (peak x
utilisation)). Clusters that do not measure list their ``workloads`` (dataset, arch, model
options, channels, classes, size, per-GPU batch, epochs, images per epoch); ``published``
names the source in the published table (``guedria_thesis``) its predictions are compared
with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segscale.scaling.model import HOROVOD_FUSION_BYTES, VARIANTS, Link

COMPUTE_SOURCES = ("measured", "published", "nominal")
CALIBRATED = "calibrated"


@dataclass(frozen=True)
class Workload:
    """One (dataset, arch) trained on a cluster: what sets its compute and gradient."""

    dataset: str
    arch: str
    channels: int
    classes: int
    batch_size: int
    model: Mapping[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    epochs: int | None = None
    images_per_epoch: int | None = None
    params: int | None = None          # trainable parameters, when not a built-in
    fp16_allreduce: bool = False
    source: str = ""

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Workload:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(m) - known)
        if unknown:
            raise ValueError(f"workload: unknown key(s) {unknown}; accepted: {sorted(known)}")
        d = dict(m)
        if d.get("size") is not None:
            d["size"] = tuple(int(s) for s in d["size"])
        d["model"] = dict(d.get("model") or {})
        return cls(**d)

    @property
    def steps_per_epoch(self) -> float | None:
        """Steps of one epoch on one GPU: images per epoch / per-GPU batch."""
        if not self.images_per_epoch:
            return None
        return self.images_per_epoch / self.batch_size


@dataclass(frozen=True)
class Cluster:
    name: str
    gpus_per_node: int
    compute: str
    links: Mapping[str, Link] | None        # None: calibrated from the microbenchmark
    allreduce: str = "ring"
    fusion_bytes: int = HOROVOD_FUSION_BYTES
    description: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)
    peak_flops: float | None = None
    utilization: float | None = None
    workloads: tuple[Workload, ...] = ()
    published: str | None = None            # source in the published table to compare with

    @property
    def calibrated(self) -> bool:
        return self.links is None

    def with_links(self, intra: Link, inter: Link) -> Cluster:
        """The same cluster with link figures (from a calibration)."""
        return Cluster(**{**self.__dict__, "links": {"intra": intra, "inter": inter}})


def _link(name: str, where: str, m: Mapping[str, Any]) -> tuple[Link, str]:
    try:
        link = Link(alpha=float(m["alpha_s"]), beta=float(m["beta_bytes_per_s"]))
    except KeyError as err:
        raise ValueError(f"{where}.links.{name}: missing {err.args[0]}") from None
    return link, str(m.get("source", ""))


def cluster_from_mapping(name: str, m: Mapping[str, Any], default_gpus_per_node: int = 1
                         ) -> Cluster:
    """A :class:`Cluster` from its config section (``clusters.<name>``).

    Raises:
        ValueError: unknown compute source or variant, nominal links without both
            ``intra`` and ``inter``, nominal compute without ``gpu.peak_flops`` and
            ``gpu.utilization``, or a non-measuring cluster without workloads.
    """
    where = f"clusters.{name}"
    compute = m.get("compute", "measured")
    if compute not in COMPUTE_SOURCES:
        raise ValueError(f"{where}.compute must be one of {COMPUTE_SOURCES}, got {compute!r}")
    variant = m.get("allreduce", "ring")
    if variant not in VARIANTS:
        raise ValueError(f"{where}.allreduce must be one of {VARIANTS}, got {variant!r}")
    raw_links = m.get("links", CALIBRATED)
    sources: dict[str, str] = {}
    if raw_links == CALIBRATED:
        links = None
    elif isinstance(raw_links, Mapping) and {"intra", "inter"} <= set(raw_links):
        links = {}
        for key in ("intra", "inter"):
            links[key], sources[key] = _link(key, where, raw_links[key])
    else:
        raise ValueError(f"{where}.links must be 'calibrated' or a mapping with 'intra' and "
                         f"'inter' (alpha_s, beta_bytes_per_s, source), got {raw_links!r}")
    gpu = dict(m.get("gpu") or {})
    if gpu.get("source"):
        sources["gpu"] = str(gpu["source"])
    if compute == "nominal" and not (gpu.get("peak_flops") and gpu.get("utilization")):
        raise ValueError(f"{where}: compute 'nominal' needs gpu.peak_flops and "
                         "gpu.utilization")
    workloads = tuple(Workload.from_mapping(w) for w in m.get("workloads") or ())
    if compute != "measured" and not workloads:
        raise ValueError(f"{where}: compute {compute!r} needs a 'workloads' list")
    for w in workloads:
        if compute != "measured" and not w.images_per_epoch:
            raise ValueError(f"{where}: workload {w.dataset}/{w.arch} needs images_per_epoch")
        if compute == "nominal" and not w.size:
            raise ValueError(f"{where}: workload {w.dataset}/{w.arch} needs size for FLOPs")
    return Cluster(name=name, gpus_per_node=int(m.get("gpus_per_node", default_gpus_per_node)),
                   compute=compute, links=links, allreduce=variant,
                   fusion_bytes=int(m.get("fusion_bytes", HOROVOD_FUSION_BYTES)),
                   description=str(m.get("description", "")), sources=sources,
                   peak_flops=gpu.get("peak_flops"), utilization=gpu.get("utilization"),
                   workloads=workloads, published=m.get("published") or None)


def clusters_from_config(section: Mapping[str, Any], default_gpus_per_node: int = 1
                         ) -> dict[str, Cluster]:
    return {name: cluster_from_mapping(name, m, default_gpus_per_node)
            for name, m in section.items()}
