"""A torch layer for the cross-domain mixture of experts (CDMoE, arXiv 2412.11834): parameters
held by an ``nn.Module``, maths by :class:`attention.moe.CrossDomainMoE`.

    layer = CDMoELayer(64, hidden=96, experts=64, heads=4, k=4, seed=0)
    y = layer(x)                               # x (..., 64) float32 -> (..., 64)

As :class:`attention.ssd_layer.SSDLayer` does for SSD, the module registers the arrays of
``CrossDomainMoE.init`` as parameters and rebuilds the :class:`~attention.moe.CrossDomainMoE`
around them on each call, so the layer and the reference are one definition. Gradients
reach every weight the forward pass reads: the shared SwiGLU, the retrieval queries and
sub-keys (through the softmax of the retrieved scores) and the retrieved experts' rows of
``down_embed`` and ``up_embed``; which experts are retrieved (a top-k) is piecewise
constant and passes no gradient, as in the Cheems code.
"""

from __future__ import annotations

from typing import Any

import torch

from attention.moe import CrossDomainMoE


class CDMoELayer(torch.nn.Module):
    """One CDMoE feed-forward layer (module docstring); the arguments are those of
    :meth:`attention.moe.CrossDomainMoE.init` (d, hidden m, experts E = s^2, retrieval
    heads, k experts per head, retrieval_dim r, bias, seed, activation)."""

    def __init__(
        self,
        d: int,
        hidden: int,
        experts: int,
        heads: int,
        k: int,
        retrieval_dim: int | None = None,
        *,
        bias: bool = False,
        seed: Any = 0,
        activation: str = "silu",
        dtype: torch.dtype = torch.float32,
        device: Any = None,
    ) -> None:
        super().__init__()
        ref = CrossDomainMoE.init(d, hidden, experts, heads, k, retrieval_dim, bias=bias,
                                  seed=seed, activation=activation)
        self.k = ref.k
        self.activation = activation
        self._names = []
        for name in CrossDomainMoE.ARRAYS:
            value = getattr(ref, name)
            if value is None:
                continue
            tensor = torch.as_tensor(value, dtype=dtype, device=device)
            self.register_parameter(name, torch.nn.Parameter(tensor))
            self._names.append(name)

    def arrays(self) -> dict[str, torch.Tensor]:
        """The arrays of :class:`~attention.moe.CrossDomainMoE`, by name."""
        return {n: getattr(self, n) for n in self._names}

    def moe(self) -> CrossDomainMoE:
        """The CDMoE with this module's current parameters."""
        return CrossDomainMoE(**self.arrays(), k=self.k, activation=self.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe().forward(x)

    def extra_repr(self) -> str:
        m = self.moe()
        return (f"d={m.d}, hidden={m.hidden}, experts={m.experts}, heads={m.heads}, "
                f"k={m.k}, retrieval_dim={m.retrieval_dim}, activation={self.activation!r}")


__all__ = ["CDMoELayer"]
