"""Reading torch weights into the package's layout, without touching the user's module.

torch's ``nn.Linear`` computes y = x A^T + b with A (out, in); tokens here are rows and
maps are right-multiplied, so A^T (in, out) is the package's matrix. Stacked heads
(out = H e, head after head) become (H, in, e) stacks; an output projection reading the
concatenated heads (in = H f) becomes (H, f, out). Every array is copied to host float64
(``numpy``): the model keeps its own tensors, dtype and device.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def host(tensor: Any) -> np.ndarray | None:
    """A float64 numpy copy of a torch tensor (None stays None); NaN or inf is refused."""
    if tensor is None:
        return None
    value = tensor.detach().to("cpu").double().numpy().copy()
    if not np.all(np.isfinite(value)):
        raise ValueError(f"the model holds non-finite weights (shape {value.shape})")
    return value


def linear(module: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (in, out), b (out,) or None) of an ``nn.Linear``."""
    return host(module.weight).T, host(module.bias)


def conv1d(module: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (in, out), b (out,)) of GPT-2's ``Conv1D``, which already stores W as (in, out)."""
    return host(module.weight), host(module.bias)


def split_heads(w: np.ndarray, count: int) -> np.ndarray:
    """(in, count e) -> (count, in, e): the columns of head h are h e .. (h + 1) e - 1."""
    d, width = w.shape
    if width % count:
        raise ValueError(f"{width} output features do not split into {count} heads")
    return w.reshape(d, count, width // count).transpose(1, 0, 2).copy()


def split_bias(b: np.ndarray | None, count: int) -> np.ndarray | None:
    """(count e,) -> (count, e)."""
    return None if b is None else b.reshape(count, -1).copy()


def merge_heads(w: np.ndarray, count: int) -> np.ndarray:
    """An output map (count f, out) reading concatenated heads -> (count, f, out)."""
    width, out = w.shape
    if width % count:
        raise ValueError(f"{width} input features do not split into {count} heads")
    return w.reshape(count, width // count, out).copy()


def check_inference(module: Any, what: str, *probabilities: float | None) -> None:
    """Refuse a module in training mode whose dropout would make its output random.

    ``probabilities``: dropout rates applied outside ``nn.Dropout`` modules (attention
    dropout passed to the attention function)."""
    import torch

    if not module.training:
        return
    active = [name or "the module" for name, m in module.named_modules()
              if isinstance(m, torch.nn.Dropout) and m.p > 0]
    if any(p for p in probabilities if p):
        active.append("attention dropout")
    if active:
        raise ValueError(
            f"the {what} is in training mode with active dropout ({', '.join(active)}), so its "
            "output is random; call .eval() on it before importing"
        )
