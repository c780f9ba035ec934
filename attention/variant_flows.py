"""The variant-flows study: does compressing the KV cache change how fast tokens cluster?

The same initial tokens (n uniform points of S^{d-1}) flow on the sphere under
dx_i/dt = P^perp_{x_i} op(x)_i for each attention variant op (``dynamics.fields.operator``),
all causal. Recorded per variant, ensemble member and time: the number of delta-clusters,
the clustering time (first recorded time with every <x_i, x_j> >= 1 - delta), and the
distance to the flow of full attention (MHA with the same weights): the mean over tokens
of the geodesic angle between x_i(t) and x_i^MHA(t).

Weight ensemble ("tied Gaussian"), drawn independently for every member from
``numpy.random.default_rng([seed, member])``:

* query and key maps have i.i.d. N(0, 1/d) entries (MFA: S_q N(0, 1/d), Q_c N(0, 1/C_q),
  S_k N(0, 1/d)); scores are scaled by beta / sqrt(head dim);
* value-output circuits are tied, W_O^h = W_V^{g(h)T} (MFA: O_c = S_v^T; MFA-KR, whose
  value is its key at alpha = 0: O_c = (d / (m C)) S_k^T), so every head's circuit
  U_h = W_V W_O^h is positive semidefinite, with N(0, 1/(H f)) value entries so that
  E[sum_h U_h] = I for every variant: all variants have the same expected value gain;
* the variants are coupled to MHA: GQA/MQA group g reuses the key and value maps of the
  first head of the group; AnSAN (an anchor every ``anchor_every`` tokens), PrFlash
  (block ``block``, resampled every step) and DMA (exp form, A = 1, top-``dma_window``
  keys) keep the MHA weights and change only the mask or bias. MFA and MFA-KR
  (C = 2 d_h) have their own draw.

``variant_flows(config)`` returns plain numpy arrays; ``as_dataset`` wraps them into an
``xarray.Dataset`` with dims (variant, member, time) and the config as attributes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from attention.config import OperatorConfig, assemble, init_params
from attention.operator import Operator

DEFAULT_VARIANTS: tuple[str, ...] = (
    "mha", "gqa", "mqa", "mfa", "mfa_kr", "ansan",
    "prflash-geometric", "prflash-harmonic", "prflash-window", "dma",
)


@dataclass(frozen=True)
class VariantFlowsConfig:
    """Sizes and parameters of the study (module docstring).

    gqa_groups: G of the GQA variant; rho, c, w: PrFlash's geometric, harmonic and window
    p(delta); dma_window: DMA's top-w.
    """

    n: int = 32
    d: int = 16
    heads: int = 4
    members: int = 8
    beta: float = 1.0
    horizon: float = 20.0
    dt: float = 0.1
    record_every: int = 1
    method: str = "euler"
    delta: float = 1e-3
    seed: int = 0
    gqa_groups: int = 2
    anchor_every: int = 8
    block: int = 4
    rho: float = 0.5
    c: float = 1.0
    w: int = 2
    dma_window: int = 8
    variants: tuple[str, ...] = DEFAULT_VARIANTS

    def __post_init__(self) -> None:
        for name in ("n", "d", "heads", "members", "record_every", "gqa_groups",
                     "anchor_every", "block", "w", "dma_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d % self.heads:
            raise ValueError(f"d = {self.d} must be divisible by heads = {self.heads}")
        if self.heads % self.gqa_groups:
            raise ValueError(f"heads = {self.heads} must be divisible by gqa_groups")
        for name in ("horizon", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        unknown = [v for v in self.variants if v not in DEFAULT_VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"unknown variants {unknown}; choose from {DEFAULT_VARIANTS}")
        object.__setattr__(self, "variants", tuple(self.variants))

    @property
    def head_dim(self) -> int:
        return self.d // self.heads

    @property
    def times(self) -> np.ndarray:
        steps = round(self.horizon / self.dt)
        return np.round(np.arange(0, steps + 1, self.record_every) * self.dt, 12)


# -- the ensemble ------------------------------------------------------------------------------


def _config(name: str, cfg: VariantFlowsConfig) -> OperatorConfig:
    base = dict(d_model=cfg.d, heads=cfg.heads, causal=True)
    if name in ("mha", "mqa"):
        return OperatorConfig(name, **base)
    if name == "gqa":
        return OperatorConfig("gqa", groups=cfg.gqa_groups, **base)
    if name in ("mfa", "mfa_kr"):
        return OperatorConfig(name, latent_dim=2 * cfg.head_dim, **base)
    if name == "ansan":
        anchors = tuple(range(cfg.anchor_every - 1, cfg.n, cfg.anchor_every))
        return OperatorConfig("ansan", anchors=anchors, **base)
    if name == "dma":
        return OperatorConfig("dma", window=cfg.dma_window, **base)
    kind = name.split("-")[1]
    param = {"geometric": cfg.rho, "harmonic": cfg.c, "window": cfg.w}[kind]
    return OperatorConfig("prflash", block=cfg.block, p=kind, p_param=param,
                          mask_seed=cfg.seed, **base)


def ensemble_operator(name: str, cfg: VariantFlowsConfig, member: int) -> Operator:
    """The operator of variant ``name`` for ensemble member ``member`` (module docstring)."""
    gen = np.random.default_rng([cfg.seed, member])
    d, H, e = cfg.d, cfg.heads, cfg.head_dim
    shared = {
        "W_Q": gen.standard_normal((H, d, e)) / np.sqrt(d),
        "W_K": gen.standard_normal((H, d, e)) / np.sqrt(d),
        "W_V": gen.standard_normal((H, d, e)) / np.sqrt(H * e),
    }
    oc = _config(name, cfg)
    params = init_params(oc, gen)
    if name in ("mfa", "mfa_kr"):
        C = oc.C
        if name == "mfa":
            params["heads.S_v"] = gen.standard_normal((d, C)) / np.sqrt(H * C)
            params["heads.O"] = np.stack([params["heads.S_v"].T] * H)
        else:
            params["heads.O"] = np.stack([params["heads.S_k"].T * d / (H * C)] * H)
    else:
        r = H // oc.kv_groups
        reps = np.arange(0, H, r)
        params["heads.W_Q"] = shared["W_Q"]
        params["heads.W_K"] = shared["W_K"][reps]
        params["heads.W_V"] = shared["W_V"][reps]
        params["heads.W_O"] = np.stack([shared["W_V"][reps[h // r]].T for h in range(H)])
    op = assemble(oc, params)
    return replace(op, scale=cfg.beta / np.sqrt(op.heads.head_dim), name=name)


def retained_fraction(name: str, cfg: VariantFlowsConfig) -> float:
    """Fraction of the n tokens a decoder keeps in its cache after the last token."""
    if name == "ansan":
        anchors = list(range(cfg.anchor_every - 1, cfg.n, cfg.anchor_every))
        open_segment = cfg.n - 1 - anchors[-1] if anchors else cfg.n
        return (len(anchors) + open_segment) / cfg.n
    if name == "dma":
        return min(cfg.dma_window, cfg.n) / cfg.n
    return 1.0


# -- the study -----------------------------------------------------------------------------------


def variant_flows(cfg: VariantFlowsConfig, *, progress: bool = False) -> dict[str, Any]:
    """Run the study. Returns numpy arrays keyed

    times (T,), variants (V,), kv_elements (V,) cache scalars per retained token,
    kv_per_token (V,) cache scalars per token of the sequence (kv_elements x retained
    fraction), clustering_time (V, M), cluster_count (V, M, T), distance (V, M, T);
    and ``config`` (a dict).
    """
    from attention.accounting import kv_elements
    from dynamics import cluster_count, clustering_time, simulate, uniform_sphere
    from dynamics.fields.operator import OperatorField

    times = cfg.times
    V, M, T = len(cfg.variants), cfg.members, times.size
    counts = np.zeros((V, M, T), dtype=np.int64)
    dist = np.zeros((V, M, T))
    ctime = np.zeros((V, M))
    for member in range(M):
        x0 = uniform_sphere([cfg.seed, member, 1], 1, cfg.n, cfg.d)
        reference = None
        paths = {}
        for name in ("mha", *cfg.variants):
            if name in paths:
                continue
            field = OperatorField(ensemble_operator(name, cfg, member), period=cfg.dt)
            traj = simulate(field, x0, times, method=cfg.method, dt=cfg.dt)
            paths[name] = traj.values[0]
            if progress:
                print(f"member {member}: {name}", flush=True)
        reference = paths["mha"]
        for v, name in enumerate(cfg.variants):
            states = paths[name]
            counts[v, member] = cluster_count(states, cfg.delta)
            ctime[v, member] = clustering_time(times, states[None], cfg.delta)[0]
            chord = np.linalg.norm(states - reference, axis=-1)
            dist[v, member] = (2 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))).mean(axis=-1)
    kv = np.array([kv_elements(_config(name, cfg)) for name in cfg.variants])
    kept = np.array([retained_fraction(name, cfg) for name in cfg.variants])
    return {
        "times": times,
        "variants": np.array(cfg.variants),
        "kv_elements": kv,
        "kv_per_token": kv * kept,
        "clustering_time": ctime,
        "cluster_count": counts,
        "distance": dist,
        "config": asdict(cfg),
    }


def as_dataset(result: dict[str, Any]):
    """The study's result as an ``xarray.Dataset`` (dims variant, member, time)."""
    import xarray as xr

    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in result["config"].items()}
    members = np.arange(result["clustering_time"].shape[1])
    return xr.Dataset(
        {
            "clustering_time": (("variant", "member"), result["clustering_time"]),
            "cluster_count": (("variant", "member", "time"), result["cluster_count"]),
            "distance": (("variant", "member", "time"), result["distance"]),
            "kv_elements": (("variant",), result["kv_elements"]),
            "kv_per_token": (("variant",), result["kv_per_token"]),
        },
        coords={"variant": result["variants"], "member": members, "time": result["times"]},
        attrs={k: str(v) for k, v in config.items()},
    )
