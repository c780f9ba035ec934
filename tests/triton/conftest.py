"""Triton tests: compiled kernels on a CUDA device, else Triton's interpreter on the CPU.

Triton decides between compiling and interpreting when it is first imported (its own
helpers such as ``tl.sum`` are decorated then), so ``TRITON_INTERPRET=1`` is set here,
at collection, when no GPU is present; nothing else in the suite imports triton during
collection. Should something have imported triton earlier in this process, the tests
fail with that explanation rather than crash inside the kernels. Without triton the
directory is skipped.
"""

import os
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
IMPORTED_TOO_EARLY = not CUDA and "triton" in sys.modules and os.environ.get(
    "TRITON_INTERPRET", "0") in ("", "0")
if not CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

try:
    import triton  # noqa: F401  (decorates triton's own helpers in the mode set above)
except ImportError:  # pragma: no cover - CI installs triton
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True)
def _interpreter_in_effect():
    if IMPORTED_TOO_EARLY:
        pytest.fail("triton was imported in compiled mode before tests/triton/conftest.py set "
                    "TRITON_INTERPRET=1, and there is no GPU: set TRITON_INTERPRET=1 in the "
                    "environment (or in tests/conftest.py), or run tests/triton on its own")


@pytest.fixture
def device() -> str:
    """Where the kernels run: the GPU, or the CPU under the interpreter."""
    return "cuda" if CUDA else "cpu"
