"""The continuous-depth limit of a trained network, and how far its token geometry is from
the network's own.

A network is its flow discretised with h = 1 (``dynamics.model_flow``). Refining the step
block by block gives a continuous-depth limit of the same weights:

* Pre-LN (GPT-2, Llama, DeepSeek): each sublayer's field f(N(x)) integrated over unit time
  by RK4 with step ``dt`` (``flow.sublayers``), attention then MLP;
* Post-LN (BERT, ALBERT): the same in standardised coordinates (``flow.standardized``),
  where the network is the authors' scheme on the sphere {mean 0, |u|^2 = d}: RK4 on the
  tangent field with the LayerNorm's standardisation as the retraction; the hidden states
  are the LayerNorm's affine image of u.

``depth_limit`` returns the limit's states at every block boundary (the final norm applied
after the last block, as the network does); ``geometry_gap`` compares two token sets by
their cosine matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynamics import normalize, pairwise_inner_products, simulate

DT = 0.125


def _flow_unit_time(field: Any, x: np.ndarray, dt: float) -> np.ndarray:
    return np.asarray(simulate(field, x, times=[0.0, 1.0], method="rk4", dt=dt).values[:, -1])


def depth_limit(flow: Any, h0: np.ndarray, *, dt: float = DT) -> list[np.ndarray]:
    """States (batch, n, d) of the continuous-depth limit at t = 0, 1, ..., L from the
    network's first hidden state h0 (batch, n, d); see the module docstring."""
    network = flow.network
    h0 = np.asarray(h0, dtype=float)
    states = [h0]
    if network.placement == "pre":
        x = h0
        for layer in range(flow.depth):
            for sublayer in flow.sublayers(layer):
                x = _flow_unit_time(sublayer, x, dt)
            states.append(x)
    else:
        first = network.input_norm
        u = h0 if first is None else np.asarray(first.coordinates(h0))
        for layer in range(flow.depth):
            for sublayer in flow.standardized(layer):
                u = _flow_unit_time(sublayer, u, dt)
            states.append(np.asarray(network.blocks[layer].mlp.norm.affine(u)))
    if network.final_norm is not None:
        states[-1] = np.asarray(network.final_norm(states[-1]))
    return states


def geometry_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |<a_i, a_j> - <b_i, b_j>| over pairs i != j of the normalised tokens, for token
    sets (n, d) or (batch, n, d) of the same shape."""
    a, b = (np.asarray(x, dtype=float) for x in (a, b))
    if a.ndim == 2:
        a, b = a[None], b[None]
    ga, gb = (np.asarray(pairwise_inner_products(normalize(x))) for x in (a, b))
    return float(np.mean(np.abs(ga - gb)))
