"""Work chunks: how a study's (seed, n, d, beta) grid is cut into independent pieces.

Every stored variable has the leading dimensions (seed, n, d, beta), then the study's own
(time, fraction, ...), which are never cut. A work chunk is a block of ``seeds.chunk``
seeds x one n x one d x ``grid.beta_chunk`` betas; the zarr chunks of every variable are
the same blocks, so no two work chunks ever write the same zarr chunk. Chunks are
numbered in C order over the chunk grid (seed block, n, d, beta block).

Inside a chunk the seeds and betas form one batch (seed-major: member b is seed
b // nb, beta b % nb) that a single ``simulate`` call integrates. Member b's initial
tokens depend on (config seed, its seed, n, d) only - the same start for every beta - and
are drawn in float64 with numpy before the cast to the chunk's backend and dtype, so a
chunk is a pure function of (config, chunk index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynamics import initial
from experiments.fields import STREAM_INITIAL, Members
from experiments.schema import StudyConfig

GRID_DIMS: tuple[str, ...] = ("seed", "n", "d", "beta")


@dataclass(frozen=True)
class WorkChunk:
    """One chunk: slices of the seed and beta axes at grid point (n_index, d_index)."""

    index: int
    seeds: slice
    n_index: int
    d_index: int
    betas: slice

    def region(self, extra_dims: int = 0) -> tuple[slice, ...]:
        """The chunk's region in a variable with dims (seed, n, d, beta, *extra)."""
        return (
            self.seeds,
            slice(self.n_index, self.n_index + 1),
            slice(self.d_index, self.d_index + 1),
            self.betas,
            *([slice(None)] * extra_dims),
        )


@dataclass(frozen=True)
class Layout:
    """The chunk grid of a config."""

    seed_count: int
    seed_block: int
    n_count: int
    d_count: int
    beta_count: int
    beta_block: int

    @classmethod
    def of(cls, config: StudyConfig) -> Layout:
        return cls(config.seeds.count, config.seeds.chunk, len(config.grid.n),
                   len(config.grid.d), len(config.grid.beta), config.grid.beta_block)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Chunks along (seed, n, d, beta)."""
        return (math.ceil(self.seed_count / self.seed_block), self.n_count, self.d_count,
                math.ceil(self.beta_count / self.beta_block))

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def zarr_chunks(self) -> tuple[int, int, int, int]:
        """Zarr chunk shape of the (seed, n, d, beta) dimensions."""
        return (min(self.seed_block, self.seed_count), 1, 1,
                min(self.beta_block, self.beta_count))

    def chunk(self, index: int) -> WorkChunk:
        if not 0 <= index < self.count:
            raise IndexError(f"chunk index {index} outside 0..{self.count - 1}")
        s, i, j, b = np.unravel_index(index, self.shape)
        s, b = int(s), int(b)
        return WorkChunk(
            index=index,
            seeds=slice(s * self.seed_block, min((s + 1) * self.seed_block, self.seed_count)),
            n_index=int(i),
            d_index=int(j),
            betas=slice(b * self.beta_block, min((b + 1) * self.beta_block, self.beta_count)),
        )


def members_of(config: StudyConfig, chunk: WorkChunk) -> Members:
    """The batch of a chunk, seed-major (member b = seed b // nb, beta b % nb)."""
    seeds = config.seeds.values[chunk.seeds]
    beta_index = np.arange(len(config.grid.beta))[chunk.betas]
    betas = np.asarray(config.grid.beta, dtype=np.float64)[chunk.betas]
    return Members(
        root=config.seed,
        n=config.grid.n[chunk.n_index],
        d=config.grid.d[chunk.d_index],
        seeds=np.repeat(seeds, beta_index.size),
        betas=np.tile(betas, seeds.size),
        beta_index=np.tile(beta_index, seeds.size),
        backend=config.compute.backend,
        dtype=config.compute.dtype,
        device=config.compute.device,
    )


_DRAWS = {  # [initial] kind -> one draw (1, n, d) (angles: (1, n)) of dynamics.initial
    "uniform": lambda gen, n, d, rho: initial.uniform_sphere(gen, 1, n, d),
    "orthogonal": lambda gen, n, d, rho: initial.orthogonal(gen, 1, n, d),
    "equiangular": lambda gen, n, d, rho: initial.equiangular(gen, 1, n, d, rho),
    "hemisphere": lambda gen, n, d, rho: initial.hemisphere(gen, 1, n, d),
    "uniform-angles": lambda gen, n, d, rho: initial.uniform_angles(gen, 1, n),
}


def _draw(config: StudyConfig, gen: np.random.Generator, n: int, d: int) -> np.ndarray:
    return _DRAWS[config.initial.kind](gen, n, d, config.initial.rho)[0]


def initial_states(config: StudyConfig, members: Members) -> Any:
    """(batch, n, d) tokens (angles: (batch, n)) of the members, on the chunk's backend."""
    n, d = members.n, members.d
    draws = {seed: _draw(config, members.generator(STREAM_INITIAL, seed, n, d), n, d)
             for seed in set(members.seeds.tolist())}
    return members.array(np.stack([draws[seed] for seed in members.seeds.tolist()]))
