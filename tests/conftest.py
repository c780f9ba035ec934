"""Test configuration: one thread per process (the machine is shared), JAX in float64.

JAX's x64 flag is switched on here, for the tests only; the package itself never
touches it. Tests of the float32 JAX path use ``jax.enable_x64(False)`` locally.
Without a GPU, Triton runs in its CPU interpreter: it reads ``TRITON_INTERPRET`` when it
is first imported, so the flag is set here, before anything can import it.
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

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
torch.set_num_threads(1)
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator per test, seeded from the test's id: independent across tests,
    reproducible across runs (set AF_TEST_SEED to draw other inputs)."""
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("AF_TEST_SEED", "0"))
    return np.random.default_rng(seed)
