"""Shared helpers: random inputs and the float64 reference the kernels are checked against."""

import numpy as np
import torch

from attention.reference import attend

TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 4e-3,
             torch.bfloat16: 3e-2}


def tensors(rng, shape, device, dtype=torch.float32, scale=1.0):
    """Standard normal draws (never zeros), on the device in ``dtype``."""
    return torch.as_tensor(scale * rng.standard_normal(shape)).to(device=device, dtype=dtype)


def sphere(rng, batch, n, d, device, dtype=torch.float32):
    x = rng.standard_normal((batch, n, d))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return torch.as_tensor(x).to(device=device, dtype=dtype)


def reference(q, k, v, beta, **options):
    """attention.reference.attend in float64 on the CPU, key/value heads repeated to H."""
    H, G = q.shape[1], k.shape[1]
    k = k.repeat_interleave(H // G, dim=1).expand(q.shape[0], H, *k.shape[2:])
    v = v.repeat_interleave(H // G, dim=1).expand(q.shape[0], H, *v.shape[2:])

    def cast(t):
        return t.detach().cpu().double()

    extra = {key: cast(val) if isinstance(val, torch.Tensor) and val.is_floating_point()
             else (val.cpu() if isinstance(val, torch.Tensor) else val)
             for key, val in options.items()}
    b = cast(beta) if isinstance(beta, torch.Tensor) else beta
    return attend(cast(q), cast(k), cast(v), b, **extra)


def relative_error(out, ref) -> float:
    """max |out - ref| / max |ref|; NaN anywhere counts as infinitely wrong."""
    out = out.detach().cpu().double()
    if torch.isnan(out).any():
        return float("inf")
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-300))
