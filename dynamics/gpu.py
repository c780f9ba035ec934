"""The CUDA route of ``simulate``: an attention field as one fused Triton launch, CUDA graphs.

On CUDA tensors ``simulate`` hands its field to :func:`route`, which replaces an attention
field - ``SelfAttention``, ``MultiHeadAttention``, Pre-/Peri-LN ``NormalizedAttention``,
and ``Noisy`` around any of them - by :class:`FusedAttention`: the same field, evaluated
as a single kernel launch per right-hand side. The launch computes every head's
attention with an online softmax, or for d <= 4 with the fixed shift of
``attention/triton/lowdim.py`` (no n x n matrix either way: n = 2^20 tokens fit), sums the
heads, and applies the epilogue of the space in registers:

    sphere:   x_dot_i = P^perp_{x_i} sum_h A^h_i       (SA, USA, causal, multi-head)
    R^d:      x_dot_i = sum_h A^h_i                    (pure attention; Pre-LN on theta = x/|x|)
    Peri-LN:  x_dot_i = A_i / |A_i|                    (A evaluated at theta)

The integrators (fixed and adaptive steps, retraction, clustering event) are unchanged:
they only ever call the field. ``GraphedScheme`` wraps a fixed-step scheme so that each
full step of a time-independent field replays one captured CUDA graph; for small n the
20-odd kernel launches of an RK4 step cost more than its arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from attention.backend import Array
from dynamics.fields.attention import MultiHeadAttention, SelfAttention
from dynamics.fields.noise import Noisy
from dynamics.fields.normalization import NormalizedAttention
from dynamics.integrators.schemes import FixedStepScheme
from dynamics.space import Sphere

ENGINES: tuple[str, ...] = ("auto", "native", "diffrax", "triton", "triton-graphs")


def _triton_importable() -> bool:
    try:
        import attention.triton  # noqa: F401
    except ImportError:
        return False
    return True


def _heads(attention: Any) -> tuple[SelfAttention, ...] | None:
    if isinstance(attention, SelfAttention):
        return (attention,)
    if isinstance(attention, MultiHeadAttention) and all(
        isinstance(h, SelfAttention) for h in attention.heads
    ):
        return attention.heads
    return None


def _uniform(heads: tuple[SelfAttention, ...]) -> bool:
    """One normalisation, one causal flag and a numeric beta across the heads."""
    first = heads[0]
    return all(
        h.normalization == first.normalization and h.causal == first.causal
        and not callable(h.beta) for h in heads
    )


@dataclass(frozen=True)
class FusedAttention:
    """``source`` (an attention field) evaluated by one Triton launch per call.

    heads:            the SelfAttention heads whose drives add up
    epilogue:         "tangent" (sphere), None (R^d, Pre-LN) or "unit" (Peri-LN)
    normalize_inputs: attend over theta = x / |x| (Pre-/Peri-LN)
    precision:        float32 tl.dot precision ("tf32x3", "ieee" or "tf32")
    kernel:           "auto", "lowdim" or "online" (``attention.triton.fused_attention``)
    """

    source: Any
    heads: tuple[SelfAttention, ...]
    epilogue: str | None
    normalize_inputs: bool = False
    precision: str = "tf32x3"
    kernel: str = "auto"
    _beta_cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def space(self):
        return self.source.space

    @property
    def time_dependent(self) -> bool:
        return bool(getattr(self.source, "time_dependent", True))

    @property
    def span_preserving(self) -> bool:
        return bool(getattr(self.source, "span_preserving", False))

    def check(self, x: Array) -> None:
        if hasattr(self.source, "check"):
            self.source.check(x)

    def on(self, like: Array) -> FusedAttention:
        source = self.source.on(like)
        return replace(self, source=source, heads=_heads(getattr(source, "attention", source)),
                       _beta_cache={})

    def _beta(self, x: Array):
        """(B, H) inverse temperatures on x's device, built once per batch size and dtype."""
        import torch

        key = (x.shape[0], x.dtype, str(x.device))
        if key not in self._beta_cache:
            columns = []
            for h in self.heads:
                b = torch.as_tensor(h.beta).to(device=x.device, dtype=torch.float64)
                columns.append(torch.broadcast_to(b.reshape(-1), (x.shape[0],)))
            dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            self._beta_cache[key] = torch.stack(columns, dim=1).to(dtype).contiguous()
        return self._beta_cache[key]

    def _qkv(self, t: Any, x: Array):
        import torch

        if all(h.Q is None and h.K is None and h.V is None and h.QK is None for h in self.heads):
            one = x[:, None]
            return one.expand(-1, len(self.heads), -1, -1), one, one
        parts = [h.queries_keys_values(t, x) for h in self.heads]
        if len({p[0].shape[-1] for p in parts}) != 1:
            raise ValueError("the fused route needs one query/key width across heads")
        return tuple(torch.stack([p[i] for p in parts], dim=1) for i in range(3))

    def _evaluate(self, t: Any, x: Array, epilogue: str | None) -> Array:
        import torch

        from attention.triton import flow_rhs

        points = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True) if (
            self.normalize_inputs) else x
        q, k, v = self._qkv(t, points)
        first = self.heads[0]
        return flow_rhs(points, q, k, v, self._beta(x), epilogue=epilogue,
                        normalization=first.normalization, causal=first.causal,
                        precision=self.precision, kernel=self.kernel)

    def __call__(self, t: Any, x: Array) -> Array:
        return self._evaluate(t, x, self.epilogue)

    def drive(self, t: Any, x: Array) -> Array:
        """The unprojected drive (the authors' scheme); for Pre-/Peri-LN the field itself."""
        if isinstance(self.source, NormalizedAttention):
            return self(t, x)
        return self._evaluate(t, x, None)


def fuse(source: Any, precision: str = "tf32x3", kernel: str = "auto") -> Any | None:
    """The fused form of an attention field, or None when it has no fused form."""
    if isinstance(source, Noisy):
        inner = fuse(source.field, precision, kernel)
        return None if inner is None else replace(source, field=inner)
    if isinstance(source, NormalizedAttention):
        heads = _heads(source.attention)
        epilogue = "unit" if source.placement == "peri" else None
        normalize = True
    else:
        heads = _heads(source)
        epilogue = "tangent" if isinstance(getattr(source, "space", None), Sphere) else None
        normalize = False
    if heads is None or not _uniform(heads):
        return None
    return FusedAttention(source, heads, epilogue, normalize, precision, kernel)


def route(field: Any, x: Array, engine: str = "auto") -> Any:
    """The field ``simulate`` integrates on ``x``'s device under ``engine``.

    "auto": the fused field for CUDA tensors when triton is installed and the field has a
    fused form, else ``field``; "triton"/"triton-graphs": the fused field or a ValueError;
    "native"/"diffrax": ``field``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine in ("native", "diffrax") or isinstance(field, FusedAttention):
        return field
    is_cuda = getattr(getattr(x, "device", None), "type", None) == "cuda"
    if engine == "auto":
        if not is_cuda or not _triton_importable():
            return field
        return fuse(field) or field
    if not _triton_importable():
        raise ValueError(f"engine={engine!r} needs triton: pip install 'attention-flows[triton]'")
    from attention.triton import runs_here

    if not runs_here(x):
        raise ValueError(f"engine={engine!r} needs CUDA torch tensors, got {type(x).__name__} "
                         f"on {getattr(x, 'device', 'cpu')}")
    fused = fuse(field)
    if fused is None:
        raise ValueError(
            f"engine={engine!r} fuses attention fields (SelfAttention, MultiHeadAttention, "
            f"Pre-/Peri-LN, Noisy of these; one normalisation and causal flag); got "
            f"{type(field).__name__}"
        )
    return fused


# -- CUDA graphs ------------------------------------------------------------------------


class GraphedScheme:
    """``base`` (a fixed-step scheme) whose steps of size ``dt`` replay a captured CUDA graph.

    One graph per (field, shape, dtype): the first step of that kind runs twice eagerly
    (compiling and autotuning the kernels on a side stream), then is captured. Steps of
    another size (outputs between grid points), time-dependent fields and states off the
    GPU run eagerly. Each replay returns a fresh copy of the graph's output buffer.
    """

    def __init__(self, base: FixedStepScheme, dt: float) -> None:
        if not isinstance(base, FixedStepScheme):
            raise TypeError(f"GraphedScheme wraps a fixed-step scheme, got {type(base).__name__}")
        self.base, self.dt = base, float(dt)
        self.name, self.order, self.stochastic = base.name, base.order, base.stochastic
        self.graphs: dict = {}

    def step(self, field, t, x, h, noise=None):
        if (getattr(field, "time_dependent", True) or h != self.dt
                or getattr(getattr(x, "device", None), "type", None) != "cuda"):
            return self.base.step(field, t, x, h, noise)
        key = (id(field), tuple(x.shape), x.dtype, noise is None)
        if key not in self.graphs:
            self.graphs[key] = _capture(
                lambda xs, ns: self.base.step(field, t, xs, h, ns), x, noise)
        static_x, static_noise, graph, static_out = self.graphs[key]
        static_x.copy_(x)
        if noise is not None:
            static_noise.copy_(noise)
        graph.replay()
        return static_out.clone()


def _capture(fn, x, noise):
    """(input, noise, graph, output) buffers of ``fn`` captured after two eager warm-ups."""
    import torch

    static_x = x.clone()
    static_noise = None if noise is None else noise.clone()
    side = torch.cuda.Stream(device=x.device)
    side.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(side):
        for _ in range(2):
            fn(static_x, static_noise)
    torch.cuda.current_stream(x.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(static_x, static_noise)
    return static_x, static_noise, graph, static_out
