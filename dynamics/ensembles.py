"""Random attention weights: the ensembles of Fig. 5 and the value matrices of 2305.05465.

Convention. The package writes the paper's column convention: the drive of token i is
sum_j A_ij V x_j and the logits are beta x_i^T QK x_j with QK = Q^T K. The authors'
phase-diagram code (rotf ``phase-diagrams.py``) stores tokens as rows of M (n, d): its
logits are beta M BF M^T and its update is (A M) V_code, whose row i is
(V_code^T sum_j A_ij x_j)^T. Hence

    QK = BF,        V = V_code^T.

``from_row_major`` applies this; every Fig. 5 helper returns paper-convention matrices.
For a symmetric BF (GOE) or V_code (Wishart) the transpose changes nothing; for
BF = G_1 G_2/sqrt(d) with V_code = BF/normV (``--randomKQ 1 --randomV 2``) the code ran
V = QK^T/normV, while the caption of Fig. 5(c) writes V = Q^T K. Both are offered
(``value_from="code"`` or ``"caption"``).

Ensembles (G: i.i.d. N(0, 1) entries), with the code's flags:

* ``ginibre``       G/sqrt(d) (entries of variance 1/d)
* ``product``       BF = G_1 G_2/sqrt(d) (entries of variance 1)                ``--randomKQ 1``
* ``wigner_code``   BF = (G + G^T)/c, c = sqrt 2 off the diagonal, 2 on it      ``--randomKQ 2``
                    (the code's "wrong Wigner": every entry has variance 1)
* ``goe``           BF = (G + G^T)/sqrt 2 (variance 1 off, 2 on the diagonal)   ``--randomKQ 3``
* ``wishart``       V_code = G G^T/sqrt(d), positive semidefinite              ``--randomV 1``
* ``--randomV 2 / 3``: V_code = +BF/normV / -BF/normV, normV = sqrt(d) for randomKQ 1, 2,
  sqrt(d + 1) for randomKQ 3, 1 for randomKQ 0 (BF = I).

Shapes: ``batch=None`` draws one (d, d) matrix, shared by every member (it broadcasts in
the fields; the code's ``--noanneal 1``/``2``, i.e. one draw per beta or per run, is one
seed per beta or one seed overall); ``batch=B`` draws B independent matrices (B, d, d)
(``--noanneal 0``, a fresh system per member).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from attention.array_api import Array, BackendName, from_numpy, rng, to_numpy

Seed = int | np.random.Generator

BILINEAR_FLAGS = {0: "identity", 1: "product", 2: "wigner-code", 3: "goe"}
VALUE_FLAGS = {0: "identity", 1: "wishart", 2: "+bilinear", 3: "-bilinear"}
PANELS = ("a", "b", "c", "d")
VALUES_2305 = ("identity", "perron-frobenius", "symmetric", "hyperplanes-polytope")

# Matrices printed in the comments of 2305.05465's ``clustering-Tformers.py`` (column convention).
PRINTED_V_2305: dict[str, np.ndarray] = {
    # Perron-Frobenius V, the 2-d example of the paper (clustering to hyperplanes)
    "hyperplanes-2d": np.array([[0.64709742, 0.81911926], [0.61210449, 0.63263484]]),
    # 3-d Perron-Frobenius examples: complex pair with Re < 0, and with Re > 0
    "hyperplanes-3d-a": np.array(
        [[0.2362413, 0.0599536, 0.40506019],
         [0.81321448, 0.49948705, 0.33754772],
         [0.2160645, 0.38505272, 0.14588075]]
    ),
    "hyperplanes-3d-b": np.array(
        [[0.18608476, 0.34391026, 0.13905949],
         [0.35244288, 0.6694859, 0.39992145],
         [0.46685606, 0.17094454, 0.42092308]]
    ),
    # symmetric V with 2 positive and 1 negative eigenvalue (codimension-k conjecture)
    "codimension-3d": np.array(
        [[0.92761287, 0.94333073, 0.3827744],
         [0.94333073, 0.59991396, 0.47825472],
         [0.3827744, 0.47825472, 0.46668605]]
    ),
}


@dataclass(frozen=True)
class Weights:
    """Attention weights in the paper's convention; ``None`` is the identity.

    QK: the bilinear form of the logits x_i^T QK x_j, (d, d) or (batch, d, d)
    V:  the value matrix of the drive sum_j A_ij V x_j, (d, d) or (batch, d, d)

    ``SA(beta, **weights.as_kwargs())`` builds the field.
    """

    QK: Array | None
    V: Array | None

    def as_kwargs(self) -> dict[str, Array | None]:
        return {"QK": self.QK, "V": self.V}


# -- plumbing ---------------------------------------------------------------------------


def _check_dim(d: int) -> None:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"the dimension d must be a positive integer, got {d!r}")


def _shape(d: int, batch: int | None) -> tuple[int, ...]:
    _check_dim(d)
    if batch is None:
        return (d, d)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer or None (shared), got {batch!r}")
    return (batch, d, d)


def _out(a: np.ndarray | None, backend: BackendName, dtype: Any, device: Any) -> Array | None:
    return None if a is None else from_numpy(a, backend, dtype, device)


def _mT(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _ginibre(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return gen.standard_normal(shape) / math.sqrt(shape[-1])


def _product(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return gen.standard_normal(shape) @ gen.standard_normal(shape) / math.sqrt(shape[-1])


def _wigner_code(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    g = gen.standard_normal(shape)
    d = shape[-1]
    scale = np.full((d, d), math.sqrt(2.0))
    np.fill_diagonal(scale, 2.0)
    return (g + _mT(g)) / scale


def _goe(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    g = gen.standard_normal(shape)
    return (g + _mT(g)) / math.sqrt(2.0)


def _wishart(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    g = gen.standard_normal(shape)
    return g @ _mT(g) / math.sqrt(shape[-1])


_BILINEAR = {"product": _product, "wigner-code": _wigner_code, "goe": _goe}


def _draw(fn, seed: Seed, d: int, batch: int | None, backend, dtype, device) -> Array:
    return from_numpy(fn(rng(seed), _shape(d, batch)), backend, dtype, device)


def ginibre(
    seed: Seed, d: int, *, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """Real Ginibre G/sqrt(d): i.i.d. N(0, 1/d) entries; (d, d) or (batch, d, d)."""
    return _draw(_ginibre, seed, d, batch, backend, dtype, device)


def product(
    seed: Seed, d: int, *, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """G_1 G_2/sqrt(d) (``--randomKQ 1``): entries of mean 0 and variance 1."""
    return _draw(_product, seed, d, batch, backend, dtype, device)


def wigner_code(
    seed: Seed, d: int, *, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """The code's "wrong Wigner" (``--randomKQ 2``): (G + G^T) divided by sqrt 2 off the
    diagonal and by 2 on it; symmetric, every entry of variance 1."""
    return _draw(_wigner_code, seed, d, batch, backend, dtype, device)


def goe(
    seed: Seed, d: int, *, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """GOE (G + G^T)/sqrt 2 (``--randomKQ 3``): symmetric, variance 1 off the diagonal, 2 on it."""
    return _draw(_goe, seed, d, batch, backend, dtype, device)


def wishart(
    seed: Seed, d: int, *, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """Wishart G G^T/sqrt(d) (``--randomV 1``): symmetric positive semidefinite, mean sqrt(d) I."""
    return _draw(_wishart, seed, d, batch, backend, dtype, device)


# -- the authors' flags -----------------------------------------------------------------


def from_row_major(bilinear: Any, value: Any) -> tuple[Any, Any]:
    """(QK, V) in the paper's convention from the row-major (BF, V_code) of the authors'
    code, where logits = M BF M^T and update = (A M) V_code: QK = BF, V = V_code^T.
    ``None`` (identity) passes through."""
    if value is None:
        return bilinear, None
    v = np.asarray(to_numpy(value))
    return bilinear, _mT(v)


def value_norm(random_kq: int, d: int) -> float:
    """normV of the code: sqrt(d) for ``--randomKQ`` 1 and 2, sqrt(d + 1) for 3, 1 for 0."""
    _check_flag("random_kq", random_kq, BILINEAR_FLAGS)
    _check_dim(d)
    return {0: 1.0, 1: math.sqrt(d), 2: math.sqrt(d), 3: math.sqrt(d + 1)}[random_kq]


def _check_flag(name: str, value: Any, table: dict[int, str]) -> None:
    if value not in table:
        raise ValueError(f"{name} must be one of {sorted(table)} ({table}), got {value!r}")


def authors_weights(
    seed: Seed, d: int, *, random_kq: int, random_v: int, batch: int | None = None,
    value_from: Literal["code", "caption"] = "code",
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Weights:
    """The weights of rotf ``phase-diagrams.py --randomKQ random_kq --randomV random_v``,
    in the paper's convention (QK = BF, V = V_code^T; see the module docstring).

    value_from="caption" instead sets V = +-QK/normV for ``random_v`` 2, 3 (the
    printed V = Q^T K); it differs from the code only when QK is not symmetric.
    """
    _check_flag("random_kq", random_kq, BILINEAR_FLAGS)
    _check_flag("random_v", random_v, VALUE_FLAGS)
    if value_from not in ("code", "caption"):
        raise ValueError(f"value_from must be 'code' or 'caption', got {value_from!r}")
    shape = _shape(d, batch)
    gen = rng(seed)
    kind = BILINEAR_FLAGS[random_kq]
    bf = None if kind == "identity" else _BILINEAR[kind](gen, shape)
    norm_v = value_norm(random_kq, d)
    if random_v == 0:
        v_code = None
    elif random_v == 1:
        v_code = _wishart(gen, shape)
    else:
        sign = 1.0 if random_v == 2 else -1.0
        base = np.broadcast_to(np.eye(d), shape) if bf is None else bf
        v_code = sign * base / norm_v
    qk, v = from_row_major(bf, v_code)
    if value_from == "caption" and random_v in (2, 3):
        v = _mT(v)
    return Weights(_out(qk, backend, dtype, device), _out(v, backend, dtype, device))


def figure5_weights(
    panel: str, seed: Seed, d: int, *, batch: int | None = None,
    value_from: Literal["code", "caption"] = "code",
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Weights:
    """Weights of Fig. 5 (d = 128 in the paper; ``batch`` = fresh matrices per member).

    (a) Q, K, V real Ginibre G/sqrt(d); QK = Q^T K. No flag of the code does this
        (its ``--randomV 1`` is PSD; paper.md erratum 6).
    (b) QK GOE, V Wishart:            ``--randomKQ 3 --randomV 1``
    (c) QK = G_1 G_2/sqrt(d), V = QK: ``--randomKQ 1 --randomV 2`` (normV = sqrt d)
    (d) QK GOE, V = QK:               ``--randomKQ 3 --randomV 2`` (normV = sqrt(d + 1))
    """
    if panel not in PANELS:
        raise ValueError(f"Fig. 5 has panels {PANELS}, got {panel!r}")
    kw = {"backend": backend, "dtype": dtype, "device": device}
    if panel == "a":
        shape = _shape(d, batch)
        gen = rng(seed)
        q, k, v = (_ginibre(gen, shape) for _ in range(3))
        return Weights(_out(_mT(q) @ k, **kw), _out(v, **kw))
    flags = {"b": (3, 1), "c": (1, 2), "d": (3, 2)}[panel]
    return authors_weights(
        seed, d, random_kq=flags[0], random_v=flags[1], batch=batch, value_from=value_from, **kw
    )


# -- value matrices of 2305.05465 ----------------------------------------------------


def value_2305(
    kind: str, d: int, *, seed: Seed | None = None, batch: int | None = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """The value matrices of 2305.05465's movies (``clustering-Tformers.py``), column convention.

    "identity"             V = I (clustering to a polytope)
    "perron-frobenius"     i.i.d. U(0, 1) entries, so V > 0 entrywise (hyperplanes)
    "symmetric"            (U + U^T)/2 with U i.i.d. U(0, 1) (codimension-k conjecture)
    "hyperplanes-polytope" diag(1, ..., 1, -0.5)
    Random kinds need ``seed``. The printed examples are in ``PRINTED_V_2305``.
    """
    if kind not in VALUES_2305:
        raise ValueError(f"unknown 2305.05465 value matrix {kind!r}; choose one of {VALUES_2305}")
    shape = _shape(d, batch)
    if kind in ("identity", "hyperplanes-polytope"):
        v = np.eye(d)
        if kind == "hyperplanes-polytope":
            v[-1, -1] = -0.5
        v = np.broadcast_to(v, shape).copy()
    else:
        if seed is None:
            raise ValueError(f"the random value matrix {kind!r} needs an explicit seed")
        u = rng(seed).random(shape)
        v = u if kind == "perron-frobenius" else (u + _mT(u)) / 2
    return from_numpy(v, backend, dtype, device)
