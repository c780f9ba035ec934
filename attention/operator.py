"""The attention operator: heads, mask, bias, normalisation and KV cache in one object.

Every variant of attention.md §8 is one :class:`Operator`:

    y_i = sum_h ( sum_j P^h_ij v^{g(h)}_j ) W_O^h,
    P^h_i. = normalise( scale <q^h_i, k^{g(h)}_j> + b^h_ij  over the keys j with M_ij = 1 )

* ``heads`` - the parameters and their factorisation (MHA/GQA/MQA, MLA, MFA, MFA-KR; see
  ``attention.variants``). A heads object maps tokens to queries, tokens to the per-token
  *cache* (exactly the tensors a decoder stores), the cache to keys and values, and head
  outputs to the model dimension:

      queries(x, pos) -> (B, H, n, e)        cache(x, pos) -> {name: (B, ..., n, c)}
      keys_values(cache, pos) -> k (B, G, m, e), v (B, G, m, f)     output(o) -> (B, n, d)

* ``mask`` (``attention.masks``, ``attention.anchored``, ``attention.prflash``), ``bias``
  (``attention.positional``, ``attention.variants.dma``), ``normalization`` ("softmax",
  "usa", "usa-shifted", "sinkhorn"), ``quantizer`` (what the stored cache turns the keys
  and values into: ``attention.variants.saq``).

The same object runs a full forward pass, a prefill that returns its :class:`KVCache`,
and decode steps against a cache (which may have been reduced, as AnSAN's Algorithm 1
does). It works on numpy, torch and JAX arrays through ``attention.router`` (on CUDA
tensors the fused kernel reads the mask's and bias's kernel plans); a torch layer
(``attention.layer``) and a dynamics field (``dynamics.fields.operator``) wrap it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, backend_of, device, namespace
from attention.masks import check_positions, positions
from attention.reference import NORMALIZATIONS_ALL, check_normalization, grouped_weights
from attention.router import Call, check_path, dense_call, grouped_attention


@dataclass(frozen=True)
class KVCache:
    """What a decoder stores: tensors with the token axis at -2, and the tokens' positions.

    tensors: {name: (B, ..., m, c)};  positions: host int (m,).
    """

    tensors: dict[str, Array]
    positions: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.size)

    def elements_per_token(self) -> int:
        """Scalars stored per token per layer (summed over the tensors, per batch member)."""
        m = len(self)
        if m == 0:
            return 0
        return int(sum(int(np.prod(t.shape)) // (t.shape[0] * m) for t in self.tensors.values()))

    def select(self, keep: Any) -> KVCache:
        """The entries with keep[j] true (keep: host booleans (m,))."""
        idx = np.nonzero(np.asarray(keep, dtype=bool))[0]
        return KVCache({name: namespace(t).take(t, namespace(t).asarray(idx, device=device(t)),
                                                axis=t.ndim - 2)
                        for name, t in self.tensors.items()}, self.positions[idx])

    def append(self, other: KVCache) -> KVCache:
        if set(other.tensors) != set(self.tensors):
            raise ValueError("cannot join caches holding different tensors")
        return KVCache({name: namespace(t).concat([t, other.tensors[name]], axis=t.ndim - 2)
                        for name, t in self.tensors.items()},
                       np.concatenate([self.positions, other.positions]))


@dataclass(frozen=True)
class Operator:
    """One attention layer (module docstring). ``scale`` None uses the heads' default
    (1/sqrt(head dim) for most variants); ``mask`` None is full (bidirectional) attention.

    Its arrays are the same for every batch member (``batch_shared``): per-member weights
    are a ``dynamics.fields.operator.MemberOperators`` of several operators."""

    batch_shared: ClassVar[bool] = True

    heads: Any
    mask: Any = None
    bias: Any = None
    normalization: str = "softmax"
    scale: Any = None
    sinkhorn_iterations: int = 3
    quantizer: Any = None
    path: str = "auto"
    name: str = field(default="attention", compare=False)

    def __post_init__(self) -> None:
        check_normalization(self.normalization, NORMALIZATIONS_ALL)
        check_path(self.path)
        if self.scale is not None and not np.isfinite(np.asarray(self.scale, dtype=float)).all():
            raise ValueError(f"scale must be finite, got {self.scale!r}")

    # -- description ---------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.heads.d_in

    @property
    def d_out(self) -> int:
        return self.heads.d_out

    @property
    def random(self) -> bool:
        """True when the mask is resampled per step (a random particle system)."""
        return self.mask is not None and self.mask.random

    @property
    def effective_scale(self) -> Any:
        return self.heads.default_scale if self.scale is None else self.scale

    def with_padding(self, valid: Any) -> Operator:
        """This operator on a padded batch: ``valid`` (batch, N) host booleans mark the real
        tokens; keys at padded positions are hidden (``attention.masks.Padding``, inside
        this operator's own fixed mask)."""
        from attention.masks import Padding

        return replace(self, mask=Padding(valid, self.mask))

    def like(self, x: Array) -> Operator:
        """This operator, moved to x's backend and dtype (``on``) unless its arrays are there:
        the passes take numpy, torch or JAX tokens whatever the weights were made in."""
        arrays = [a for a in (getattr(self.heads, n) for n in self.heads.ARRAYS) if a is not None]
        if not arrays or (backend_of(arrays[0]) == backend_of(x) and arrays[0].dtype == x.dtype):
            return self
        return self.on(x)

    def on(self, like: Array) -> Operator:
        """This operator with its parameters on the backend, dtype and device of ``like``."""
        out = replace(self, heads=self.heads.on(like))
        if self.bias is not None:
            out = replace(out, bias=self.bias.on(like))
        return out

    # -- passes ----------------------------------------------------------------------------
    def cache(self, x: Array, pos: Any = None) -> KVCache:
        """The per-token cache of tokens x (B, n, d) at positions ``pos`` (default 0..n-1)."""
        x = self._check_tokens(x)
        pos = positions(x.shape[-2], pos)
        return KVCache(self.heads.cache(x, pos), pos)

    def forward(
        self, x: Array, pos: Any = None, *, step: Any = 0, path: str | None = None
    ) -> Array:
        """y (B, n, d_out): every token attends to the tokens of x under the mask."""
        op = self.like(x)
        cache = op.cache(x, pos)
        return op.attend(x, cache.positions, cache, step=step, path=path)

    __call__ = forward

    def prefill(self, x: Array, pos: Any = None, *, step: Any = 0) -> tuple[Array, KVCache]:
        """(y, cache): a forward pass that also returns the cache a decoder would keep."""
        op = self.like(x)
        cache = op.cache(x, pos)
        return op.attend(x, cache.positions, cache, step=step), cache

    def decode(
        self, x: Array, pos: Any, cache: KVCache, *, step: Any = 0
    ) -> tuple[Array, KVCache]:
        """(y, cache'): new tokens x (B, t, d) at positions ``pos`` attend to the cached
        tokens and to themselves; their cache entries are appended."""
        new = self.cache(x, pos)
        cache = new if len(cache) == 0 else cache.append(new)
        return self.attend(x, new.positions, cache, step=step), cache

    def weights(self, x: Array, pos: Any = None, *, step: Any = 0) -> Array:
        """The attention matrices P (B, H, n, n) of a forward pass (dense reference)."""
        cache = self.cache(x, pos)
        q, k, v, call = self._prepare(x, cache.positions, cache, step)
        call = dense_call(call, q, k, v)
        return grouped_weights(
            q, k, self.effective_scale, mask=call.mask, causal=call.causal, bias=call.bias,
            normalization=self.normalization, sinkhorn_iterations=self.sinkhorn_iterations,
        )

    def attend(
        self, x: Array, q_pos: Any, cache: KVCache, *, step: Any = 0, path: str | None = None
    ) -> Array:
        """Queries of x at q_pos against the keys and values held in ``cache``."""
        q, k, v, call = self._prepare(x, q_pos, cache, step)
        o = grouped_attention(
            q, k, v, self.effective_scale, mask=call.mask, causal=call.causal, bias=call.bias,
            normalization=self.normalization, sinkhorn_iterations=self.sinkhorn_iterations,
            path=path or self.path, step=call.step,
        )
        return self.heads.output(o)

    # -- internals ---------------------------------------------------------------------------
    def _check_tokens(self, x: Array) -> Array:
        if getattr(x, "ndim", None) != 3:
            raise ValueError(f"tokens must have shape (batch, n, d), got {getattr(x, 'shape', x)}")
        if x.shape[-1] != self.d_in:
            raise ValueError(f"the operator takes d = {self.d_in} features, got {x.shape[-1]}")
        return x

    def _prepare(self, x: Array, q_pos: Any, cache: KVCache, step: Any):
        """(q, k, v, call): over aligned positions (q_pos = k_pos = 0..n-1) the mask (the
        causal one as the causal flag) and bias go to the router as objects; otherwise as
        host booleans and bias values. A step traced by JAX (a random mask inside ``jax.jit``,
        ``vmap`` or a diffrax solve) draws its mask on the host (:func:`traced_mask`)."""
        q_pos = check_positions("q_pos", q_pos)
        k_pos = cache.positions
        q = self.heads.queries(x, q_pos)
        tensors = cache.tensors if self.quantizer is None else self.quantizer(cache.tensors)
        k, v = self.heads.keys_values(tensors, k_pos)
        mask = self.mask
        if mask is not None and mask.per_member and np.ndim(step) == 0 and not is_traced(step):
            step = np.full(x.shape[0], int(step))
        aligned = q_pos.size == k_pos.size and np.array_equal(q_pos, np.arange(q_pos.size)) \
            and np.array_equal(k_pos, q_pos)
        if aligned and mask is not None and mask.causal:
            return q, k, v, Call(causal=True, bias=self.bias)
        call = Call(mask=mask, bias=self.bias, step=step)
        if aligned and not is_traced(step):
            return q, k, v, call
        if mask is not None and is_traced(step):
            call = replace(call, mask=traced_mask(mask, q_pos, k_pos, step))
        return q, k, v, dense_call(call, q, k, v, q_pos, k_pos)


def is_traced(value: Any) -> bool:
    """True for a JAX tracer: a value computed inside ``jax.jit``, ``vmap`` or ``grad``."""
    if "jax" not in sys.modules:
        return False
    import jax

    return isinstance(value, jax.core.Tracer)


def traced_mask(mask: Any, q_pos: np.ndarray, k_pos: np.ndarray, step: Any) -> Array:
    """The (n, m) boolean mask of a traced integer ``step``, as a JAX array.

    Masks are host index structure; a random mask's draw depends on the step, which under
    ``jax.jit`` is only known at run time, so the draw is made by a host callback (one call
    per batch member under ``vmap``). The rows are not re-checked there: only masks that
    keep the diagonal (PrFlash) are resampled per step. Masks drawn per batch member need
    the member's index, which a vmapped callback does not see: they are refused.
    """
    import jax
    import jax.numpy as jnp

    if mask.per_member:
        raise ValueError(
            "a mask drawn per batch member (per_member=True) cannot be resampled inside a "
            "JAX trace (jit, vmap, diffrax); use per_member=False or a fixed-step method"
        )

    def draw(s: Any) -> np.ndarray:
        return np.asarray(mask.allowed(q_pos, k_pos, int(s)), dtype=bool)

    shape = jax.ShapeDtypeStruct((q_pos.size, k_pos.size), jnp.bool_)
    return jax.pure_callback(draw, shape, step, vmap_method="sequential")
