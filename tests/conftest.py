"""Test configuration: one thread per process (the machine is shared), JAX in float64.

JAX's x64 flag is switched on here, for the tests only; the package itself never
touches it. Tests of the float32 JAX path use ``jax.enable_x64(False)`` locally.
"""

import os
import zlib

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import numpy as np
import pytest
import torch

torch.set_num_threads(1)
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator per test, seeded from the test's id: independent across tests,
    reproducible across runs (set AF_TEST_SEED to draw other inputs)."""
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("AF_TEST_SEED", "0"))
    return np.random.default_rng(seed)
