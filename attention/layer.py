"""A torch layer for every variant: parameters held by an ``nn.Module``, maths by the operator.

    layer = AttentionLayer(OperatorConfig("mfa", d_model=64, heads=8), seed=0)
    y = layer(x)                         # x (B, n, 64) float32 tensor -> (B, n, 64)

The module registers the arrays of ``attention.config.init_params`` as parameters and,
on each call, assembles the :class:`~attention.operator.Operator` around them and runs
its forward pass, so the layer and the reference are one definition and gradients flow
through the reference (or through SDPA / FlexAttention where the route takes them).
"""

from __future__ import annotations

from typing import Any

import torch

from attention.config import OperatorConfig, assemble, init_params
from attention.operator import Operator


class AttentionLayer(torch.nn.Module):
    """One attention layer of any variant (module docstring)."""

    def __init__(
        self,
        config: OperatorConfig,
        *,
        seed: Any = 0,
        dtype: torch.dtype = torch.float32,
        device: Any = None,
        path: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(config, OperatorConfig):
            raise TypeError(f"config must be an OperatorConfig, got {type(config).__name__}")
        self.config = config
        self.path = path
        self._names = {}
        for name, value in init_params(config, seed).items():
            safe = name.replace(".", "__")
            self._names[safe] = name
            tensor = torch.as_tensor(value, dtype=dtype, device=device)
            self.register_parameter(safe, torch.nn.Parameter(tensor))

    def operator(self) -> Operator:
        """The operator with this module's current parameters."""
        from dataclasses import replace

        params = {name: getattr(self, safe) for safe, name in self._names.items()}
        return replace(assemble(self.config, params), path=self.path)

    def forward(self, x: torch.Tensor, positions: Any = None, step: Any = 0) -> torch.Tensor:
        return self.operator().forward(x, positions, step=step)

    def extra_repr(self) -> str:
        return f"variant={self.config.variant!r}, d_model={self.config.d_model}, " \
               f"heads={self.config.heads}, path={self.path!r}"
