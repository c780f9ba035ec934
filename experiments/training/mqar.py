"""Multi-query associative recall (MQAR; Arora et al., "Zoology", arXiv 2312.04927), as
used to evaluate DMA in arXiv 2412.11834, generated on the fly from a seed.

A sequence of ``seq_len + 1`` tokens: first ``pairs`` key-value pairs
``k_1 v_1 k_2 v_2 ...`` (distinct keys from the key range, distinct values from the value
range), then a query section of pad tokens (0) in which ``queries`` of the keys (distinct,
in random order; more queries than pairs ask every key once and the rest uniformly) appear
at random, non-overlapping places, each followed by its value:

    k_1 v_1 ... k_P v_P  0 0 k_3 v_3 0 k_1 v_1 0 0 0 k_7 v_7 ...

The model reads ``inputs = seq[:-1]`` and predicts ``targets = seq[1:]``; it is scored only
at the answer positions (``mask``): the positions of the queried keys in ``inputs``,
where the target is the value that followed that key in the key-value section.

Vocabulary: 0 is the pad token, keys are 1 .. K and values K+1 .. vocab-1 with
K = (vocab - 1) // 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

PAD = 0


@dataclass(frozen=True)
class MQARTask:
    """Sizes of an MQAR problem (module docstring). ``queries`` None: every key once; the
    default 24 fills the query section of 64 tokens after 8 pairs (each key at least once)."""

    vocab: int = 64
    seq_len: int = 64
    pairs: int = 8
    queries: int | None = 24

    def __post_init__(self) -> None:
        for name in ("vocab", "seq_len", "pairs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.queries is not None and (not isinstance(self.queries, int)
                                         or isinstance(self.queries, bool) or self.queries < 1):
            raise ValueError(f"queries must be a positive integer or None, got "
                             f"{self.queries!r}")
        if self.pairs > self.n_keys or self.pairs > self.vocab - 1 - self.n_keys:
            raise ValueError(f"vocab = {self.vocab} has {self.n_keys} keys and "
                             f"{self.vocab - 1 - self.n_keys} values: too few for "
                             f"{self.pairs} distinct pairs")
        if 2 * self.pairs + 2 * self.n_queries > self.seq_len + 1:
            raise ValueError(f"seq_len = {self.seq_len} is too short for {self.pairs} pairs "
                             f"and {self.n_queries} queries")

    @property
    def n_keys(self) -> int:
        return (self.vocab - 1) // 2

    @property
    def n_queries(self) -> int:
        return self.pairs if self.queries is None else self.queries

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MQARBatch(NamedTuple):
    """inputs, targets: int64 (B, seq_len); mask: bool (B, seq_len), True at the answers."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def generate(task: MQARTask, batch: int, seed: Any) -> MQARBatch:
    """``batch`` MQAR sequences drawn from ``seed`` (an int, a sequence of ints or a numpy
    Generator, which is advanced); the same seed gives the same batch."""
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    gen = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    P, Q, K = task.pairs, task.n_queries, task.n_keys
    n_values = task.vocab - 1 - K
    rows = np.arange(batch)[:, None]
    keys = 1 + np.argsort(gen.random((batch, K)), axis=1)[:, :P]
    values = 1 + K + np.argsort(gen.random((batch, n_values)), axis=1)[:, :P]
    if Q <= P:  # distinct pairs, in query order
        asked = np.argsort(gen.random((batch, P)), axis=1)[:, :Q]
    else:       # every pair once, then uniform draws; shuffled
        extra = gen.integers(0, P, size=(batch, Q - P))
        both = np.concatenate([np.broadcast_to(np.arange(P), (batch, P)), extra], axis=1)
        asked = np.take_along_axis(both, np.argsort(gen.random((batch, Q)), axis=1), axis=1)
    L = task.seq_len + 1 - 2 * P                                # query-section length
    # Q non-overlapping 2-token slots: sorted distinct r_i in [0, L - Q), start r_i + i.
    r = np.sort(np.argsort(gen.random((batch, L - Q)), axis=1)[:, :Q], axis=1)
    starts = 2 * P + r + np.arange(Q)
    seq = np.full((batch, task.seq_len + 1), PAD, dtype=np.int64)
    seq[:, 0 : 2 * P : 2] = keys
    seq[:, 1 : 2 * P : 2] = values
    seq[rows, starts] = keys[rows, asked]
    seq[rows, starts + 1] = values[rows, asked]
    mask = np.zeros((batch, task.seq_len), dtype=bool)
    mask[rows, starts] = True
    return MQARBatch(seq[:, :-1].copy(), seq[:, 1:].copy(), mask)


__all__ = ["PAD", "MQARBatch", "MQARTask", "generate"]
