"""Masks and biases: which keys each query may see, what is added to its scores.

A mask says M_ij = 1 when query i may attend key j. It is index structure, so it is
built on the host (numpy booleans) from the token *positions* of the queries and keys
(q_pos (n,), k_pos (m,)): the same mask serves a full forward (q_pos = k_pos =
0..n-1) and a decode step (one query at the newest position, keys from a cache).

Every mask object has

* ``allowed(q_pos, k_pos, step=0)`` - the dense (n, m) boolean form, used by the
  reference; masks resampled per step (PrFlash) take the step index and may return
  (batch, n, m) when ``step`` is an array (batch,) of per-member steps;
* ``layout(q_pos, k_pos, block, step=0)`` - the block form used by kernels: for each
  query block, the key blocks that are *full* (every entry allowed: no elementwise
  mask needed) and those that are *partial* (the elementwise mask is applied there).
  Absent blocks are skipped. This is FlexAttention's ``BlockMask`` (kv_num_blocks /
  kv_indices and their full_* twins) and the tile lists of a Triton kernel;
* ``kernel_plan(n, m, step, batch, block, causal)`` - how a fused kernel walks the tiles
  over positions 0..n-1 and masks them (:class:`KernelPlan`, host data only);
* flags ``causal`` (it is the causal mask), ``random`` (resampled per step), ``per_member``.

A bias b^h_ij (:class:`Bias`) has ``values`` (dense), ``kernel_bias`` (:class:`KernelBias`)
and, when ``restricts``, ``restrict`` (DMA's top-w narrows the mask). No mask may leave a
query row with nothing to attend: :func:`check_rows` raises, for mask objects and for
boolean masks given to ``attend``, ``attention_weights`` and ``grouped_attention``
alike (a ValueError naming the rows; never a silent zero or NaN row). A padded query
(:class:`Padding`) sees itself, so padding never empties a row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, asarray_like, is_jax, is_torch, to_numpy


def positions(n: int, given: Any = None) -> np.ndarray:
    """The positions of a sequence of n tokens: ``given`` (checked), by default 0..n-1."""
    if given is None:
        return np.arange(n, dtype=np.int64)
    pos = check_positions("positions", given)
    if pos.size != n:
        raise ValueError(f"{pos.size} positions for {n} tokens")
    return pos


def check_positions(name: str, pos: Any) -> np.ndarray:
    """Host int64 positions (n,), non-negative."""
    arr = np.asarray(pos)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-d integer array of token positions, got {arr!r}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got min {arr.min()}")
    return arr.astype(np.int64)


def check_rows(allowed: Any, causal: bool = False) -> None:
    """Raise ValueError if some query row of a dense boolean mask (..., n, m) (and with
    ``causal`` the causal mask j <= i) allows no key: such a query has nothing to attend
    to, and softmax over an empty row is undefined (torch's SDPA returns a zero row there,
    the reference used to). Masks traced by JAX are not checked (no host values)."""
    if "Tracer" in type(allowed).__name__ and type(allowed).__module__.startswith("jax"):
        return
    host = np.asarray(to_numpy(allowed), dtype=bool)
    if causal:
        n, m = host.shape[-2:]
        host = host & (np.arange(m)[None, :] <= np.arange(n)[:, None])
    empty = ~host.any(axis=-1)
    if empty.any():
        rows = np.unique(np.nonzero(empty)[-1])[:8].tolist()
        raise ValueError(
            f"the mask leaves query rows {rows} with no key to attend; every row needs at "
            "least one allowed key (keep the diagonal, or widen the window)"
        )


def as_backend_mask(allowed: Any, like: Array) -> Array:
    """A boolean mask on the backend (and device) of ``like``."""
    if is_torch(like):
        import torch

        if isinstance(allowed, torch.Tensor):
            return allowed.to(device=like.device, dtype=torch.bool)
        return torch.as_tensor(np.asarray(allowed, dtype=bool), device=like.device)
    if is_jax(like):
        import jax.numpy as jnp

        return jnp.asarray(allowed, dtype=bool)
    return np.asarray(allowed, dtype=bool)


# -- the block form ------------------------------------------------------------------


@dataclass(frozen=True)
class BlockLayout:
    """Per query block I (rows I*block .. (I+1)*block - 1), the key blocks to visit.

    full[I]:    key blocks where every (existing) entry is allowed;
    partial[I]: key blocks with some allowed entries: apply the elementwise mask there.
    Blocks listed in neither are skipped. n, m are the query and key lengths.
    """

    block: int
    n: int
    m: int
    full: tuple[tuple[int, ...], ...]
    partial: tuple[tuple[int, ...], ...]

    @property
    def query_blocks(self) -> int:
        return -(-self.n // self.block)

    @property
    def key_blocks(self) -> int:
        return -(-self.m // self.block)

    @classmethod
    def from_dense(cls, allowed: np.ndarray, block: int) -> BlockLayout:
        """Classify the tiles of a dense (n, m) mask into full, partial and empty."""
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.ndim != 2:
            raise ValueError(f"a block layout needs one (n, m) mask, got shape {allowed.shape}")
        check_block(block)
        n, m = allowed.shape
        full, partial = [], []
        for i0 in range(0, n, block):
            f, p = [], []
            for J, j0 in enumerate(range(0, m, block)):
                tile = allowed[i0 : i0 + block, j0 : j0 + block]
                if tile.all():
                    f.append(J)
                elif tile.any():
                    p.append(J)
            full.append(tuple(f))
            partial.append(tuple(p))
        return cls(block, n, m, tuple(full), tuple(partial))

    def support(self) -> np.ndarray:
        """(n, m) booleans: True on every visited tile (full or partial)."""
        out = np.zeros((self.n, self.m), dtype=bool)
        b = self.block
        for I in range(self.query_blocks):
            for J in (*self.full[I], *self.partial[I]):
                out[I * b : (I + 1) * b, J * b : (J + 1) * b] = True
        return out

    def kept_blocks(self) -> int:
        """Number of visited tiles (the work of a block-sparse kernel)."""
        return sum(len(f) + len(p) for f, p in zip(self.full, self.partial, strict=True))

    def kv_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(kv_num_blocks (Qb,), kv_indices (Qb, Kb), full_kv_num_blocks, full_kv_indices):
        the partial and full lists padded into FlexAttention's ``from_kv_blocks`` arrays."""
        qb, kb = self.query_blocks, self.key_blocks

        def pack(lists):
            num = np.array([len(x) for x in lists], dtype=np.int32)
            idx = np.zeros((qb, kb), dtype=np.int32)
            for I, x in enumerate(lists):
                idx[I, : len(x)] = x
            return num, idx

        return (*pack(self.partial), *pack(self.full))


def square_positions(n: int, m: int) -> np.ndarray:
    """Positions 0..n-1 of a kernel plan, which needs as many keys as queries."""
    if n != m:
        raise ValueError(f"mask objects need as many keys as queries, got n={n}, m={m}")
    return np.arange(n)


def check_block(block: int) -> int:
    if not isinstance(block, (int, np.integer)) or isinstance(block, bool) or block < 1:
        raise ValueError(f"block size must be a positive integer, got {block!r}")
    return int(block)


@dataclass(frozen=True)
class KernelPlan:
    """How a fused kernel visits key tiles (``visit``: "all", "causal" band, "lists" of
    ``layouts``, shared or per batch member) and the rule on tiles that need one (``rule``:
    "none", "causal", "anchored" (reads SEG, ANC, ANC_CUM), "dense" (reads MASK (..., n, m)))."""

    visit: str = "all"
    rule: str = "none"
    layouts: tuple[BlockLayout, ...] = ()
    arrays: dict[str, Any] = field(default_factory=dict)


# -- masks -------------------------------------------------------------------------------


class Mask(ABC):
    """Base class: subclasses define ``allowed``; the block form and the kernel plan
    default to tiling it."""

    random: ClassVar[bool] = False
    causal: ClassVar[bool] = False
    per_member: ClassVar[bool] = False

    @abstractmethod
    def allowed(self, q_pos: Any, k_pos: Any, step: Any = 0) -> np.ndarray:
        """Booleans (len(q_pos), len(k_pos)): may query i attend to key j (at ``step``)."""

    def layout(self, q_pos: Any, k_pos: Any, block: int, step: Any = 0) -> BlockLayout:
        allowed = self.allowed(q_pos, k_pos, step)
        if allowed.ndim != 2:
            raise ValueError("a block layout is built for one step at a time (an integer step)")
        return BlockLayout.from_dense(allowed, block)

    def kernel_plan(self, n: int, m: int, step: Any = 0, batch: int = 1, block: int = 64,
                    causal: bool = False) -> KernelPlan:
        """Block lists of the tiled dense mask (ANDed with the causal one when ``causal``),
        the table applied on partial tiles; per-member masks are a table on every tile."""
        pos = square_positions(n, m)
        allowed = self.allowed(pos, pos, step)
        if causal:
            allowed = allowed & np.tri(n, m, dtype=bool)
        if allowed.ndim != 2:
            return KernelPlan("all", "dense", arrays={"MASK": allowed})
        return KernelPlan("lists", "dense", (BlockLayout.from_dense(allowed, block),),
                          {"MASK": allowed})


@dataclass(frozen=True)
class Full(Mask):
    """Every key is visible (bidirectional attention)."""

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        return np.ones((q.size, k.size), dtype=bool)

    def kernel_plan(self, n, m, step=0, batch=1, block=64, causal=False):
        return CAUSAL.kernel_plan(n, m) if causal else KernelPlan()


@dataclass(frozen=True)
class Causal(Mask):
    """M_ij = 1[pos(j) <= pos(i)]: a token sees itself and its past."""

    causal: ClassVar[bool] = True

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        return k[None, :] <= q[:, None]

    def kernel_plan(self, n, m, step=0, batch=1, block=64, causal=False):
        """The causal band: tiles below the diagonal unmasked, the diagonal tile masked."""
        square_positions(n, m)
        return KernelPlan("causal", "causal")


@dataclass(frozen=True)
class SlidingWindow(Mask):
    """M_ij = 1[0 <= pos(i) - pos(j) < window]: the last ``window`` tokens, itself included."""

    window: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ValueError(f"window must be a positive integer, got {self.window!r}")

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        gap = q[:, None] - k[None, :]
        return (gap >= 0) & (gap < self.window)


@dataclass(frozen=True)
class DenseMask(Mask):
    """A user-given (N, N) boolean table over positions: M_ij = table[pos(i), pos(j)]."""

    table: Any = None

    def __post_init__(self) -> None:
        table = np.asarray(self.table)
        if table.ndim != 2 or table.dtype != bool:
            raise ValueError(f"table must be a 2-d boolean array, got {table.dtype} {table.shape}")
        check_rows(table)
        object.__setattr__(self, "table", table)

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        rows, cols = self.table.shape
        if (q.size and q.max() >= rows) or (k.size and k.max() >= cols):
            raise ValueError(f"positions exceed the mask table of shape {self.table.shape}")
        return self.table[np.ix_(q, k)]


@dataclass(frozen=True)
class Padding(Mask):
    """Key padding, per batch member: member b's query i may attend key j when position
    pos(j) holds a real token of b (``valid[b, pos(j)]``) and ``inner`` allows it (None:
    every key; ``CAUSAL`` for a padded decoder batch). A query at a padded position sees
    itself only, so that every row attends to something; its output means nothing, as in
    the models that pad.

    valid: host booleans (batch, N) over positions 0..N-1.
    """

    valid: Any = None
    inner: Mask | None = None

    per_member: ClassVar[bool] = True

    def __post_init__(self) -> None:
        valid = np.asarray(self.valid)
        if valid.ndim != 2 or valid.dtype != bool:
            raise ValueError(f"valid must be (batch, positions) booleans, got {valid.dtype} "
                             f"{valid.shape}")
        if not valid.any(axis=1).all():
            raise ValueError("every batch member needs at least one real (unpadded) token")
        if self.inner is not None and (not isinstance(self.inner, Mask) or self.inner.random):
            raise ValueError("the inner mask of Padding must be a fixed Mask (causal, window)")
        object.__setattr__(self, "valid", valid)

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        batch, size = self.valid.shape
        if np.ndim(step) and np.size(step) != batch:
            raise ValueError(f"the padding mask holds {batch} members, the tokens "
                             f"{np.size(step)}")
        if (q.size and q.max() >= size) or (k.size and k.max() >= size):
            raise ValueError(f"positions exceed the {size} positions of the padding mask")
        base = np.ones((q.size, k.size), dtype=bool) if self.inner is None \
            else self.inner.allowed(q, k)
        out = base[None] & self.valid[:, None, k]
        alone = ~self.valid[:, q][:, :, None] & (q[:, None] == k[None, :])[None]
        return out | alone


CAUSAL = Causal()
FULL = Full()


# -- biases ------------------------------------------------------------------------------


def convert_arrays(obj: Any, like: Array) -> Any:
    """A copy of a frozen dataclass (heads, bias, quantizer) with every array field (listed
    in ``ARRAYS``) on the backend, dtype and device of ``like``; None fields stay None."""
    return replace(obj, **{name: None if getattr(obj, name) is None
                           else asarray_like(getattr(obj, name), like) for name in obj.ARRAYS})


@dataclass(frozen=True)
class KernelBias:
    """A bias as fused-kernel arguments: -m_h g(|i - j|) with ``slopes`` m_h (H,) and
    ``distances`` None (g(r) = r, computed in the kernel) or a table g(0..L-1); and/or a
    key-only ``key_bias`` (B|1, H|1, m) with the ``mask`` (B|1, H|1, n, m) it imposes."""

    slopes: np.ndarray | None = None
    distances: np.ndarray | None = None
    key_bias: Any = None
    mask: Any = None


class Bias(ABC):
    """Base class of additive biases (module docstring); ``on`` moves its ``ARRAYS``."""

    ARRAYS: ClassVar[tuple[str, ...]] = ()

    @property
    def restricts(self) -> bool:
        """True when ``restrict`` narrows the mask (DMA's top-w)."""
        return False

    @abstractmethod
    def values(self, q: Array, k: Array, v: Array, q_pos: Any, k_pos: Any) -> Array:
        """The bias b_ij added to the scores, broadcasting to (B, H, n, m)."""

    @abstractmethod
    def kernel_bias(self, q: Array, k: Array, v: Array, causal: bool = False) -> KernelBias:
        """The bias as the fused kernel takes it (``KernelBias``)."""

    def restrict(self, allowed: Any, bias: Array) -> Any:
        """The mask narrowed by the bias values (only when ``restricts``)."""
        return allowed

    def on(self, like: Array) -> Bias:
        return convert_arrays(self, like)
