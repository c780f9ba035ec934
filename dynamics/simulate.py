"""``simulate``: one call that integrates any field on numpy, torch or JAX arrays.

    traj = simulate(SA(beta=4.0), x0, times=np.linspace(0, 30, 201), method="rk4", dt=0.1)

x0 has shape (batch, n, d) (or (batch, n) for angle fields; an unbatched (n, d) is
accepted and the batch axis dropped again on output). The result holds the state, or
``observe(state)``, at each requested time, and with ``stop_when_clustered=delta`` the
time at which each member first had all <x_i, x_j> >= 1 - delta (that member then stops).

Methods: "authors", "euler", "rk4", "euler-maruyama" (fixed step ``dt``, required) and
"dopri5", "tsit5" (adaptive, ``rtol``/``atol``). On JAX the adaptive methods run
through diffrax (jit-compiled, vmapped over the batch; no progress bar there); its
differentiable form is ``dynamics.diffrax_flow``. With V = I and
d >= n the reduced solver (``dynamics.reduced``) is used unless ``reduce=False``.
On CUDA torch tensors attention fields run as one fused Triton launch per right-hand
side (``dynamics.gpu``; ``engine="triton"`` insists on it, ``"triton-graphs"`` also
replays each fixed step from a CUDA graph, ``"native"`` keeps the unfused field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from attention.backend import Array, backend_of, namespace, resolve_dtype
from dynamics.gpu import ENGINES, GraphedScheme, route
from dynamics.integrators.adaptive import integrate_adaptive
from dynamics.integrators.fixed import integrate_fixed
from dynamics.integrators.recording import ClusterEvent
from dynamics.integrators.schemes import FIXED_STEP_SCHEMES
from dynamics.integrators.tableaux import DOPRI5, TSIT5
from dynamics.reduced import from_span, reducible, span_basis, to_span
from dynamics.validation import check_delta, check_real, check_times, check_tokens

ADAPTIVE_METHODS = {"dopri5": DOPRI5, "tsit5": TSIT5}
METHODS: tuple[str, ...] = (*FIXED_STEP_SCHEMES, *ADAPTIVE_METHODS)


@dataclass(frozen=True)
class Trajectory:
    """The solution at the requested times.

    times:          (T,) output times
    values:         (batch, T, n, d) states, or (batch, T, ...) of the observable
    cluster_time:   (batch,) first time all pairs reached 1 - delta (NaN: not by the horizon),
                    or None when no clustering event was requested
    accepted_steps, rejected_steps: (batch,) step counts
    """

    times: np.ndarray
    values: Array
    cluster_time: np.ndarray | None
    accepted_steps: np.ndarray
    rejected_steps: np.ndarray
    method: str
    reduced: bool
    observable: str = "state"

    @property
    def states(self) -> Array:
        if self.observable != "state":
            raise AttributeError(
                f"this trajectory recorded {self.observable!r}, not the states; "
                "run simulate without observe= to keep them"
            )
        return self.values

    @property
    def final(self) -> Array:
        """Values at the last output time, (batch, ...)."""
        return self.values[:, -1]


class _Progress:
    def __init__(self, t0: float, t1: float, enabled: bool, label: str) -> None:
        self.bar = None
        self.t = t0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=t1 - t0, desc=label, unit="time", leave=False)

    def advance_to(self, t: float) -> None:
        if self.bar is not None and t > self.t:
            self.bar.update(t - self.t)
            self.t = t

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _identity(x: Array) -> Array:
    return x


def _reduced_observer(observe: Callable | None, basis: Array) -> Callable:
    if observe is None:
        return _identity
    if getattr(observe, "rotation_invariant", False):
        return observe
    return lambda y: observe(from_span(y, basis))


def simulate(
    field,
    x0: Array,
    times: Any,
    *,
    method: str = "dopri5",
    dt: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    stop_when_clustered: float | None = None,
    observe: Callable[[Array], Array] | None = None,
    seed: int | np.random.Generator | None = None,
    reduce: bool | str = "auto",
    dtype: Any = None,
    max_steps: int = 100_000,
    engine: str = "auto",
    progress: bool = False,
) -> Trajectory:
    """Integrate ``field`` from ``x0`` and return a :class:`Trajectory` (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "diffrax" and method not in ADAPTIVE_METHODS:
        raise ValueError(f"engine='diffrax' runs the adaptive methods {tuple(ADAPTIVE_METHODS)}")
    times = check_times([0.0, times] if np.ndim(times) == 0 else times)
    space = field.space
    squeeze = x0.ndim == space.state_rank - 1
    if squeeze:
        x0 = x0[None]
    check_tokens(x0, space_name=space.name)
    if dtype is not None:
        xp = namespace(x0)
        x0 = xp.astype(x0, resolve_dtype(backend_of(x0), dtype))
    if hasattr(field, "check"):
        field.check(x0)
    if hasattr(field, "on"):
        field = field.on(x0)
    delta = None if stop_when_clustered is None else check_delta(stop_when_clustered)
    if delta is not None and space.name != "sphere":
        raise ValueError("stop_when_clustered applies to tokens on the sphere")

    stochastic = getattr(field, "sigma", 0.0) != 0.0
    fixed = method in FIXED_STEP_SCHEMES
    if stochastic != (method == "euler-maruyama"):
        raise ValueError(
            "noisy fields need method='euler-maruyama'"
            if stochastic
            else "method='euler-maruyama' integrates noisy fields (dynamics.Noisy)"
        )
    if fixed:
        if dt is None:
            raise ValueError(f"method={method!r} is a fixed-step scheme: pass dt > 0")
        check_real("dt", dt, positive=True)
    else:
        check_real("rtol", rtol, positive=True)
        check_real("atol", atol, positive=True)
    if stochastic and seed is None:
        raise ValueError("noisy fields need an explicit seed")

    use_reduced = _decide_reduce(reduce, field, x0, stochastic)
    basis = None
    run_field, start, observer = field, x0, observe or _identity
    if use_reduced:
        basis = span_basis(x0)
        run_field, start = field.restricted(basis), to_span(x0, basis)
        observer = _reduced_observer(observe, basis)
    scheme = FIXED_STEP_SCHEMES.get(method)
    if engine.startswith("triton") or (engine == "auto" and backend_of(x0) == "torch"):
        run_field = route(run_field, start, engine)
        if engine == "triton-graphs" and fixed:
            scheme = GraphedScheme(scheme, float(dt))

    event = ClusterEvent(delta, int(x0.shape[0]), float(times[0]))
    bar = _Progress(float(times[0]), float(times[-1]), progress, f"simulate[{method}]")
    try:
        if not fixed and backend_of(x0) == "jax" and engine != "native":
            from dynamics.integrators.diffrax_path import integrate_diffrax

            raw = integrate_diffrax(
                run_field, start, times, solver=method, rtol=rtol, atol=atol,
                observe=observer, delta=delta, max_steps=max_steps,
            )
        elif fixed:
            rng = np.random.default_rng(seed) if stochastic else None
            raw = integrate_fixed(
                run_field, start, times, scheme=scheme, dt=float(dt),
                observe=observer, event=event, rng=rng, progress=bar,
            )
        else:
            if engine == "diffrax":
                raise ValueError("engine='diffrax' needs JAX arrays")
            raw = integrate_adaptive(
                run_field, start, times, tableau=ADAPTIVE_METHODS[method], rtol=rtol, atol=atol,
                observe=observer, event=event, max_steps=max_steps, progress=bar,
            )
    finally:
        bar.close()

    values = raw.values
    if use_reduced and observe is None:
        values = from_span(values, basis)
    if squeeze:
        values = values[0]
    return Trajectory(
        times=times,
        values=values,
        cluster_time=None if delta is None else raw.cluster_time,
        accepted_steps=raw.accepted,
        rejected_steps=raw.rejected,
        method=method,
        reduced=use_reduced,
        observable="state" if observe is None else getattr(observe, "__name__", "observable"),
    )


def _decide_reduce(reduce: bool | str, field, x0: Array, stochastic: bool) -> bool:
    if reduce == "auto":
        return reducible(field, x0) and not stochastic
    if reduce is True:
        if not reducible(field, x0) or stochastic:
            raise ValueError(
                "reduce=True needs a deterministic field with V = I (tokens stay in the span of "
                "their initial positions) and d >= n"
            )
        return True
    if reduce is False:
        return False
    raise ValueError(f"reduce must be 'auto', True or False, got {reduce!r}")

