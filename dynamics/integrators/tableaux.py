"""Butcher tableaux of the explicit Runge-Kutta schemes (coefficients from the papers cited).

Classical RK4 (Kutta 1901); Dormand-Prince 5(4) (Dormand & Prince 1980, 'DOPRI5');
Tsitouras 5(4) (Tsitouras 2011, Comput. Math. Appl. 62:770). Both embedded pairs are
FSAL: the last stage is evaluated at the new point. ``b_error`` = b - b_hat gives the
local error estimate of the embedded lower-order solution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ButcherTableau:
    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...] | None = None
    error_order: int | None = None

    @property
    def stages(self) -> int:
        return len(self.c)


RK4 = ButcherTableau(
    name="rk4",
    order=4,
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
)

_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_BHAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)

DOPRI5 = ButcherTableau(
    name="dopri5",
    order=5,
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        _DP_B[:6],
    ),
    b=_DP_B,
    b_error=tuple(b - bh for b, bh in zip(_DP_B, _DP_BHAT, strict=True)),
    error_order=4,
)

_TS_B = (
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
    0.0,
)
_TS_ERR = (
    0.001780011052226,
    0.000816434459657,
    -0.007880878010262,
    0.144711007173263,
    -0.582357165452555,
    0.458082105929187,
    -1 / 66,
)

TSIT5 = ButcherTableau(
    name="tsit5",
    order=5,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=(
        (),
        (0.161,),
        (-0.008480655492356989, 0.335480655492357),
        (2.897153057105493, -6.359448489975075, 4.3622954328695815),
        (
            5.325864828439257,
            -11.748883564062828,
            7.4955393428898365,
            -0.09249506636175525,
        ),
        (
            5.86145544294642,
            -12.92096931784711,
            8.159367898576159,
            -0.071584973281401,
            -0.028269050394068383,
        ),
        _TS_B[:6],
    ),
    b=_TS_B,
    b_error=_TS_ERR,
    error_order=4,
)
