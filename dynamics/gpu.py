"""The CUDA route of ``simulate``: an attention field as one fused Triton launch, CUDA graphs.

On CUDA tensors ``simulate`` hands its field to :func:`route`, which replaces a field
that describes itself to the kernel (``Field.fusion()``: ``SelfAttention``,
``MultiHeadAttention``, Pre-/Peri-LN ``NormalizedAttention``, and ``Noisy`` around any of
them) by :class:`FusedAttention`: the same field, evaluated as a single kernel launch per
right-hand side. The launch computes every head's
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
from typing import Any, ClassVar

from attention.array_api import Array, backend_of, on_cuda
from dynamics.fields.base import Field, Fusion, Wrapper
from dynamics.integrators.schemes import FixedStepScheme

ENGINES: tuple[str, ...] = ("auto", "native", "compiled", "diffrax", "triton", "triton-graphs")


def _triton_importable() -> bool:
    try:
        import attention.triton  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class FusedAttention(Wrapper):
    """``source`` (a field with a :class:`Fusion`) evaluated by one Triton launch per call.

    The space, time dependence and checks are the source's.
    precision: float32 tl.dot precision ("tf32x3", "ieee" or "tf32")
    kernel:    "auto", "lowdim" or "online" (``attention.triton.fused_attention``)
    """

    source: Field
    fusion_plan: Fusion
    precision: str = "tf32x3"
    kernel: str = "auto"
    _beta_cache: dict = field(default_factory=dict, compare=False, repr=False)

    INNER: ClassVar[str] = "source"

    @property
    def heads(self) -> tuple[Any, ...]:
        return self.fusion_plan.heads

    def with_inner(self, inner: Field) -> FusedAttention:
        return replace(self, source=inner, fusion_plan=inner.fusion(), _beta_cache={})

    def fusion(self) -> Fusion:
        return self.fusion_plan

    def fused(self, build: Any) -> FusedAttention:
        return self

    def _beta(self, x: Array):
        """The heads' inverse temperatures, (1 or batch, H), on x's device, built once per
        batch size and dtype (each head's beta is a number or (batch, 1, 1), ``per_member``)."""
        import torch

        key = (x.shape[0], x.dtype, str(x.device))
        if key not in self._beta_cache:
            dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            columns = [torch.as_tensor(h.beta, dtype=dtype).reshape(-1) for h in self.heads]
            self._beta_cache[key] = torch.stack(torch.broadcast_tensors(*columns), dim=-1).to(
                x.device)
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
            self.fusion_plan.normalize_inputs) else x
        q, k, v = self._qkv(t, points)
        first = self.heads[0]
        return flow_rhs(points, q, k, v, self._beta(x), epilogue=epilogue,
                        normalization=first.normalization, causal=first.causal,
                        precision=self.precision, kernel=self.kernel)

    def __call__(self, t: Any, x: Array) -> Array:
        return self._evaluate(t, x, self.fusion_plan.epilogue)

    def drive(self, t: Any, x: Array) -> Array:
        """The unprojected drive (the authors' scheme); for Pre-/Peri-LN the field itself."""
        return self._evaluate(t, x, self.fusion_plan.drive_epilogue)


def fuse(source: Field, precision: str = "tf32x3", kernel: str = "auto") -> Field | None:
    """The fused form of a field (``Field.fused``), or None when it has none."""
    return source.fused(lambda field, plan: FusedAttention(field, plan, precision, kernel))


def route(field: Field, x: Array, engine: str = "auto") -> Field:
    """The field ``simulate`` integrates on ``x``'s device under ``engine``.

    "auto": the fused field for CUDA tensors when triton is installed and the field has a
    fused form, else ``field``; "triton"/"triton-graphs": the fused field or a ValueError;
    "native"/"compiled"/"diffrax": ``field``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine in ("native", "compiled", "diffrax"):
        return field
    if engine == "auto":
        if not on_cuda(x) or not _triton_importable():
            return field
        return fuse(field) or field
    if not _triton_importable():
        raise ValueError(f"engine={engine!r} needs triton: pip install 'attention-flows[triton]'")
    from attention.triton import runs_here

    if not runs_here(x):
        device = x.device if backend_of(x) == "torch" else "cpu"
        raise ValueError(f"engine={engine!r} needs CUDA torch tensors, got {type(x).__name__} "
                         f"on {device}")
    fused = fuse(field) if isinstance(field, Field) else None
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
        if field.time_dependent or h != self.dt or not on_cuda(x):
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
