"""The array-API layer: one code path for numpy, torch and JAX arrays.

The mathematics of the package is written once against the Python array API
(through ``array_api_compat``); this module holds the few operations the array
API does not standardise (conversion, matrix exponential, compilation, random
draws) and the backend-wide conventions:

* float64 is the default wherever the backend allows it (JAX only with
  ``jax_enable_x64``; the package never flips that flag itself);
* randomness comes from explicit seeds, drawn with numpy's ``Generator`` and
  moved to the target backend, so that one seed gives the same numbers on every
  backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import array_api_compat
import numpy as np

Array = Any
BackendName = Literal["numpy", "torch", "jax"]
BACKENDS: tuple[str, ...] = ("numpy", "torch", "jax")


def namespace(*arrays: Array):
    """The array-API namespace shared by ``arrays`` (Python scalars are ignored)."""
    return array_api_compat.array_namespace(
        *[a for a in arrays if not isinstance(a, (int, float, complex))]
    )


def backend_of(x: Array) -> BackendName:
    """Name of the library that owns ``x``: ``"numpy"``, ``"torch"`` or ``"jax"``."""
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_jax_array(x):
        return "jax"
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    raise TypeError(
        f"expected a numpy, torch or JAX array, got {type(x).__name__}; "
        "convert it with numpy.asarray first"
    )


def is_torch(x: Array) -> bool:
    return array_api_compat.is_torch_array(x)


def on_cuda(x: Array) -> bool:
    """Whether ``x`` is a CUDA torch tensor."""
    return is_torch(x) and x.device.type == "cuda"


def is_jax(x: Array) -> bool:
    return array_api_compat.is_jax_array(x)


def jax_x64_enabled() -> bool:
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def default_dtype(backend: BackendName) -> Any:
    """float64 where the backend allows it, float32 for JAX without x64."""
    if backend == "numpy":
        return np.float64
    if backend == "torch":
        import torch

        return torch.float64
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.float64 if jax_x64_enabled() else jnp.float32
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


def resolve_dtype(backend: BackendName, dtype: Any = None) -> Any:
    """The backend's dtype object for ``dtype`` (``None``, a name, or a dtype)."""
    if dtype is None:
        return default_dtype(backend)
    name = dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")
    name = {"fp32": "float32", "fp64": "float64", "double": "float64", "float": "float32"}.get(
        name, name
    )
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if backend == "numpy":
        return np.dtype(name).type
    if backend == "torch":
        import torch

        return getattr(torch, name)
    import jax.numpy as jnp

    if name == "float64" and not jax_x64_enabled():
        raise ValueError(
            "float64 JAX arrays need jax_enable_x64: wrap the call in "
            "`with jax.enable_x64(True):` or set JAX_ENABLE_X64=1"
        )
    return getattr(jnp, name)


def from_numpy(
    a: np.ndarray, backend: BackendName, dtype: Any = None, device: Any = None
) -> Array:
    """Move a numpy array to ``backend`` with the given dtype (default: the backend's)."""
    target = resolve_dtype(backend, dtype)
    if backend == "numpy":
        return np.asarray(a, dtype=target)
    if backend == "torch":
        import torch

        return torch.as_tensor(np.asarray(a), dtype=target, device=device)
    import jax.numpy as jnp

    return jnp.asarray(np.asarray(a), dtype=target)


def to_numpy(x: Array) -> np.ndarray:
    """A numpy copy (or view) of any backend array."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def asarray_like(value: Any, like: Array) -> Array:
    """``value`` as an array of the same backend, dtype and device as ``like``."""
    if is_torch(like):
        import torch

        if isinstance(value, torch.Tensor):
            return value.to(dtype=like.dtype, device=like.device)
        return torch.as_tensor(np.asarray(value), dtype=like.dtype, device=like.device)
    if is_jax(like):
        import jax.numpy as jnp

        return jnp.asarray(value, dtype=like.dtype)
    return np.asarray(value, dtype=like.dtype)


def device(x: Array) -> Any:
    """The device of ``x`` as its namespace's creation functions take it (``device=``)."""
    return array_api_compat.device(x)


def expm(a: Array) -> Array:
    """Matrix exponential over the last two axes, on the backend of ``a``."""
    if is_torch(a):
        import torch

        return torch.linalg.matrix_exp(a)
    if is_jax(a):
        import jax.scipy.linalg as jsl

        return jsl.expm(a)
    import scipy.linalg

    a = np.asarray(a)
    if a.ndim == 2:
        return scipy.linalg.expm(a)
    flat = a.reshape(-1, *a.shape[-2:])
    return np.stack([scipy.linalg.expm(m) for m in flat]).reshape(a.shape)


def compile_step(fn: Callable, like: Array) -> Callable:
    """``jax.jit(fn)`` for JAX arrays; ``fn`` unchanged for eager backends."""
    if is_jax(like):
        import jax

        return jax.jit(fn)
    return fn


def rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """numpy Generator from an explicit seed (an int, a Generator, or a SeedSequence)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("an explicit seed is required (an int or numpy.random.Generator)")
    return np.random.default_rng(seed)


# -- constructor checks shared by the attention and dynamics packages -------------------


def check_real_dtype(name: str, value: Any) -> None:
    """Raise TypeError unless ``value`` (an array, nested sequence or number) is real:
    a complex weight would lose its imaginary part when cast to the tokens' dtype."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        dtype = np.asarray(value).dtype
    kind = str(dtype).removeprefix("torch.")
    if "complex" in kind:
        raise TypeError(f"{name} must be real, got dtype {kind}: a complex array would lose "
                        "its imaginary part; pass its real part explicitly if that is meant")
    if not ("float" in kind or "int" in kind):
        raise TypeError(f"{name} must be a real numeric array, got dtype {kind}")


def check_integer(name: str, value: Any, *, minimum: int | None = 1) -> int:
    """``value`` as an int: an int or integer-valued numpy integer, never a bool or a float
    (8.7 is not rounded to 8); at least ``minimum`` unless that is None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value
