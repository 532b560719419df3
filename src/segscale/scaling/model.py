"""The alpha-beta model of one synchronous data-parallel training step, by hand.

Per step on N GPUs (per-GPU batch fixed, global images per epoch fixed: strong scaling)::

    T(N) = t_compute + t_allreduce(bytes, N)

with ``bytes`` = trainable parameters x 4 (x 2 with fp16 compression). Allreduce variants:

- ``ring`` (Horovod's default, NCCL/MPI ring over all N ranks): each message costs
  ``2(N-1) alpha + 2(N-1)/N * bytes / beta``. When the ranks span nodes the ring's slowest
  link sets the pace: alpha of the inter-node link, beta = min(intra, inter).
- ``hierarchical`` (HOROVOD_HIERARCHICAL_ALLREDUCE): reduce-scatter inside each node of g
  GPUs, an allreduce across the M = N/g nodes, an allgather inside the node::

      2(g-1) alpha_intra + 2(g-1)/g * bytes / beta_intra
      + 2(M-1) alpha_inter + 2(M-1)/M * bytes / beta_inter

  (the g shards of bytes/g cross the node's one network link together, so the node sends
  ``bytes`` in total: the inter-node term carries the whole gradient).

Tensor fusion: the gradient leaves in ``ceil(bytes / fusion_bytes)`` fused messages; every
message pays the latency terms, the bandwidth terms add up to the whole gradient either
way. Communication is not overlapped with the backward pass (an upper bound on its cost).

An epoch at N is ``steps(1) / N`` steps (global images per epoch fixed), so
``epoch(N) = steps(1) / N * T(N)``, ``speedup(N) = epoch(1) / epoch(N)`` and
``efficiency(N) = speedup(N) / N``. N = 1 has no communication.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VARIANTS = ("ring", "hierarchical")
HOROVOD_FUSION_BYTES = 64 * 1024 * 1024  # HOROVOD_FUSION_THRESHOLD default


@dataclass(frozen=True)
class Link:
    """One kind of link: ``alpha`` seconds of latency per message hop, ``beta`` bytes/s."""

    alpha: float
    beta: float

    def __post_init__(self):
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValueError(f"link latency alpha must be finite and >= 0, got {self.alpha}")
        if not self.beta > 0:
            raise ValueError(f"link bandwidth beta must be > 0 bytes/s, got {self.beta}")


def gradient_bytes(trainable_params: int, fp16: bool = False) -> int:
    """Bytes allreduced per step: 4 per trainable parameter, 2 with fp16 compression."""
    return int(trainable_params) * (2 if fp16 else 4)


def messages(nbytes: float, fusion_bytes: float | None) -> int:
    """Fused messages carrying ``nbytes``: ``ceil(nbytes / fusion_bytes)`` (at least 1);
    ``fusion_bytes`` None or 0 means one message."""
    if nbytes <= 0:
        return 0
    if not fusion_bytes:
        return 1
    return max(1, math.ceil(nbytes / fusion_bytes))


def ring_allreduce_s(nbytes: float, n: int, link: Link, fusion_bytes: float | None = None
                     ) -> float:
    """Ring allreduce of ``nbytes`` over ``n`` ranks on one kind of link:
    ``m * 2(n-1) alpha + 2(n-1)/n * nbytes / beta`` with ``m`` fused messages; 0 for n = 1."""
    if n < 1:
        raise ValueError(f"ranks must be >= 1, got {n}")
    if n == 1 or nbytes <= 0:
        return 0.0
    m = messages(nbytes, fusion_bytes)
    return m * 2 * (n - 1) * link.alpha + 2 * (n - 1) / n * nbytes / link.beta


def nodes_spanned(n: int, gpus_per_node: int) -> int:
    """Nodes N ranks need at one rank per GPU: ``ceil(n / gpus_per_node)``."""
    return -(-int(n) // int(gpus_per_node))


def allreduce_s(nbytes: float, n: int, gpus_per_node: int, intra: Link, inter: Link,
                variant: str = "ring", fusion_bytes: float | None = HOROVOD_FUSION_BYTES
                ) -> float:
    """Allreduce time of ``nbytes`` over ``n`` ranks packed ``gpus_per_node`` to a node.

    Within one node both variants are the ring on the intra-node link. Across nodes:
    ``ring`` = one ring paced by its slowest link (alpha of ``inter``, beta = the smaller
    of the two); ``hierarchical`` = see the module docstring (a partly filled last node
    counts as a full one: g = gpus_per_node, M = nodes spanned).
    """
    if variant not in VARIANTS:
        raise ValueError(f"allreduce variant must be one of {VARIANTS}, got {variant!r}")
    if n <= gpus_per_node:
        return ring_allreduce_s(nbytes, n, intra, fusion_bytes)
    if variant == "ring":
        slowest = Link(alpha=max(intra.alpha, inter.alpha), beta=min(intra.beta, inter.beta))
        return ring_allreduce_s(nbytes, n, slowest, fusion_bytes)
    g, nodes = int(gpus_per_node), nodes_spanned(n, gpus_per_node)
    return (ring_allreduce_s(nbytes, g, intra, fusion_bytes)
            + ring_allreduce_s(nbytes, nodes, inter, fusion_bytes))


def step_s(compute_s: float, nbytes: float, n: int, gpus_per_node: int, intra: Link,
           inter: Link, variant: str = "ring",
           fusion_bytes: float | None = HOROVOD_FUSION_BYTES) -> float:
    """One training step on ``n`` GPUs: per-GPU compute plus the gradient's allreduce."""
    return compute_s + allreduce_s(nbytes, n, gpus_per_node, intra, inter, variant,
                                   fusion_bytes)


def epoch_s(steps_one_gpu: float, step_time_s: float, n: int) -> float:
    """Epoch time at ``n`` GPUs: ``steps_one_gpu / n`` steps of ``step_time_s``."""
    return steps_one_gpu / n * step_time_s


def speedup(epoch_one_s: float, epoch_n_s: float) -> float:
    return epoch_one_s / epoch_n_s


def efficiency(speedup_n: float, n: int) -> float:
    return speedup_n / n


def gpu_grid(largest: int = 512, per_decade: int = 8, extra: tuple[int, ...] = ()) -> list[int]:
    """GPU counts 1..``largest``: log-spaced (``per_decade`` points a decade, rounded to
    integers), every power of two, and ``extra`` (the swept counts, the thesis's 18)."""
    if largest < 1:
        raise ValueError(f"largest GPU count must be >= 1, got {largest}")
    points = {1, int(largest)}
    k = 0
    while 10 ** (k / per_decade) <= largest:
        points.add(round(10 ** (k / per_decade)))
        k += 1
    p = 1
    while p <= largest:
        points.add(p)
        p *= 2
    points.update(int(e) for e in extra if 1 <= int(e) <= largest)
    return sorted(points)
