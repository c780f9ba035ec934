"""A torch layer for SSD with RoPE: parameters held by an ``nn.Module``, maths by
:class:`attention.ssd.StateSpaceDuality`.

    layer = SSDLayer(64, heads=4, state=16, seed=0)   # W_out (H p, d): a map R^d -> R^d
    y = layer(x)                                        # x (B, n, 64) float32 -> (B, n, 64)

As :class:`attention.layer.AttentionLayer` does for the softmax variants, the module
registers the arrays of ``StateSpaceDuality.init`` as parameters and, on each call,
rebuilds the :class:`~attention.ssd.StateSpaceDuality` around them, so the layer and the
reference are one definition and gradients flow through it. SSD is not an
``Operator`` (``attention.ssd``'s docstring says why), so it is not a ``VARIANTS`` entry of
``attention.config``; this class is its layer.

The decay A < 0 is a parameter as it stands (``log_decay=False``: the reference's
parametrisation) or, as Mamba-2 stores it, through A_log with A = -exp(A_log)
(``log_decay=True``): a gradient step can then never make A positive, which a model
trained from this layer needs (``experiments.training``).
"""

from __future__ import annotations

from typing import Any

import torch

from attention.positional import Rope
from attention.ssd import FORMS, ROPE, StateSpaceDuality


class SSDLayer(torch.nn.Module):
    """One SSD(+RoPE) layer (module docstring).

    d_model, heads, state, head_dim: as ``StateSpaceDuality.init`` (p = d_model // heads
    by default); output: with the output map W_out (H p, d_model) (Cheems's out_proj);
    rope: the rotary table of B and C (None: plain SSD); form, chunk: how the forward pass
    computes (``"chunked"``, ``"recurrent"``, ``"quadratic"``; the same numbers);
    log_decay: hold A_log = log(-A) instead of A (module docstring).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        state: int,
        head_dim: int | None = None,
        *,
        output: bool = True,
        rope: Rope | None = ROPE,
        seed: Any = 0,
        dtype: torch.dtype = torch.float32,
        device: Any = None,
        form: str = "chunked",
        chunk: int = 64,
        log_decay: bool = False,
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        ref = StateSpaceDuality.init(d_model, heads, state, head_dim, seed=seed, rope=rope,
                                     output=output)
        if not isinstance(log_decay, bool):
            raise TypeError(f"log_decay must be True or False, got {log_decay!r}")
        self.rope = rope
        self.form = form
        self.chunk = chunk
        self.log_decay = log_decay
        self._names = []
        for name in StateSpaceDuality.ARRAYS:
            value = getattr(ref, name)
            if value is None:
                continue
            if name == "A" and log_decay:
                name, value = "A_log", torch.log(-torch.as_tensor(value))
            tensor = torch.as_tensor(value, dtype=dtype, device=device)
            self.register_parameter(name, torch.nn.Parameter(tensor))
            self._names.append(name)

    def arrays(self) -> dict[str, torch.Tensor]:
        """The arrays of :class:`~attention.ssd.StateSpaceDuality` (A = -exp(A_log) when
        the layer holds A_log)."""
        arrays = {n: getattr(self, n) for n in self._names}
        if self.log_decay:
            arrays["A"] = -torch.exp(arrays.pop("A_log"))
        return arrays

    def ssd(self) -> StateSpaceDuality:
        """The SSD with this module's current parameters."""
        return StateSpaceDuality(**self.arrays(), rope=self.rope)

    def forward(self, x: torch.Tensor, positions: Any = None) -> torch.Tensor:
        return self.ssd().forward(x, positions, form=self.form, chunk=self.chunk)

    def state(self, x: torch.Tensor, positions: Any = None) -> torch.Tensor:
        """The recurrent state (B, H, N, p) after the tokens x: all a decoder keeps."""
        return self.ssd().state(x, positions)

    def extra_repr(self) -> str:
        m = self.ssd()
        return (f"d_in={m.d_in}, heads={m.n_heads}, head_dim={m.head_dim}, "
                f"state={m.state_dim}, d_out={m.d_out}, rope={self.rope is not None}, "
                f"form={self.form!r}, log_decay={self.log_decay}")
