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
replays each fixed step from a CUDA graph, ``"native"`` keeps the unfused field). On the
CPU the adaptive methods run SA, USA and the circle models in float64 on the compiled
engine (``dynamics.compiled``: each member its own compiled loop, members in parallel;
``engine="compiled"`` insists on it, ``"native"`` keeps the numpy path); both take the
same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from attention.array_api import Array, backend_of, namespace, resolve_dtype
from dynamics.fields.base import Field
from dynamics.gpu import ENGINES, GraphedScheme, route
from dynamics.integrators.adaptive import integrate_adaptive
from dynamics.integrators.fixed import RawSolution, integrate_fixed
from dynamics.integrators.recording import ClusterEvent
from dynamics.integrators.schemes import FIXED_STEP_SCHEMES
from dynamics.integrators.tableaux import DOPRI5, TSIT5
from dynamics.observables import is_rotation_invariant
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


@dataclass(frozen=True)
class Plan:
    """How ``simulate`` runs: the field it integrates (converted, reduced to the span of x0
    and routed to a fused kernel as the options ask), from which state, recording what,
    with which driver; ``basis`` is U of the reduction (None: not reduced).
    ``run(progress)`` calls ``driver(field, start, observe=..., progress=...)``."""

    field: Field
    start: Array
    observe: Callable[[Array], Any]
    driver: Callable[..., RawSolution]
    basis: Array | None = None

    def run(self, progress: _Progress) -> RawSolution:
        return self.driver(self.field, self.start, observe=self.observe, progress=progress)


def _reduced(field: Field, x0: Array, observe: Callable | None) -> tuple[Field, Array, Callable,
                                                                          Array]:
    """(field, start, observer, U) of the reduced solver (``dynamics.reduced``)."""
    basis = span_basis(x0)
    if observe is None:
        observer = _identity
    elif is_rotation_invariant(observe):
        observer = observe
    else:
        def observer(y):
            return observe(from_span(y, basis))
    return field.restricted(basis), to_span(x0, basis), observer, basis


def simulate(
    field: Field,
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
    if not isinstance(field, Field):
        raise TypeError(f"simulate integrates a dynamics.Field (e.g. SA(beta)), got "
                        f"{type(field).__name__}")
    _check_options(field, method, engine, dt, rtol, atol, seed)
    times = check_times([0.0, times] if np.ndim(times) == 0 else times)
    squeeze = x0.ndim == field.space.state_rank - 1
    x0 = _prepared_states(field, x0[None] if squeeze else x0, dtype)
    field = field.on(x0)
    delta = None if stop_when_clustered is None else check_delta(stop_when_clustered)
    if delta is not None and field.space.name != "sphere":
        raise ValueError("stop_when_clustered applies to tokens on the sphere")
    plan = make_plan(field, x0, times, method=method, dt=dt, rtol=rtol, atol=atol, delta=delta,
                     observe=observe, seed=seed, reduce=reduce, max_steps=max_steps,
                     engine=engine)
    bar = _Progress(float(times[0]), float(times[-1]), progress, f"simulate[{method}]")
    try:
        raw = plan.run(bar)
    finally:
        bar.close()
    values = raw.values
    if plan.basis is not None and observe is None:
        values = from_span(values, plan.basis)
    return Trajectory(
        times=times,
        values=values[0] if squeeze else values,
        cluster_time=None if delta is None else raw.cluster_time,
        accepted_steps=raw.accepted,
        rejected_steps=raw.rejected,
        method=method,
        reduced=plan.basis is not None,
        observable="state" if observe is None else getattr(observe, "__name__", "observable"),
    )


def _prepared_states(field: Field, x0: Array, dtype: Any) -> Array:
    """x0 (batch, ...) validated for the field's space, cast to ``dtype``, checked by the field."""
    check_tokens(x0, space_name=field.space.name)
    if dtype is not None:
        x0 = namespace(x0).astype(x0, resolve_dtype(backend_of(x0), dtype))
    field.check(x0)
    return x0


def _check_options(field: Field, method: str, engine: str, dt, rtol, atol, seed) -> None:
    """Raise ValueError for a method, engine or step option that cannot run this field."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "diffrax" and method not in ADAPTIVE_METHODS:
        raise ValueError(f"engine='diffrax' runs the adaptive methods {tuple(ADAPTIVE_METHODS)}")
    stochastic = field.sigma != 0.0
    if stochastic != (method == "euler-maruyama"):
        raise ValueError(
            "noisy fields need method='euler-maruyama'"
            if stochastic
            else "method='euler-maruyama' integrates noisy fields (dynamics.Noisy)"
        )
    if method in FIXED_STEP_SCHEMES:
        if dt is None:
            raise ValueError(f"method={method!r} is a fixed-step scheme: pass dt > 0")
        check_real("dt", dt, positive=True)
    else:
        check_real("rtol", rtol, positive=True)
        check_real("atol", atol, positive=True)
    if stochastic and seed is None:
        raise ValueError("noisy fields need an explicit seed")


def make_plan(field: Field, x0: Array, times: np.ndarray, *, method: str, dt: float | None,
              rtol: float, atol: float, delta: float | None, observe: Callable | None,
              seed: Any, reduce: bool | str, max_steps: int, engine: str) -> Plan:
    """The :class:`Plan` of a validated call (``field`` already ``on(x0)``): reduction,
    routing to a fused kernel, and the driver (fixed step, native adaptive, diffrax)."""
    basis = None
    run_field, start, observer = field, x0, observe or _identity
    if _decide_reduce(reduce, field, x0):
        run_field, start, observer, basis = _reduced(field, x0, observe)
    scheme = FIXED_STEP_SCHEMES.get(method)
    compiled = _compiled(engine, method, run_field, start)
    if engine.startswith("triton") or (engine == "auto" and backend_of(x0) == "torch"
                                       and not compiled):
        run_field = route(run_field, start, engine)
        if engine == "triton-graphs" and scheme is not None:
            scheme = GraphedScheme(scheme, float(dt))
    event = ClusterEvent(delta, int(x0.shape[0]), float(times[0]))
    if scheme is not None:
        rng = np.random.default_rng(seed) if field.sigma != 0.0 else None
        driver = partial(integrate_fixed, times=times, scheme=scheme, dt=float(dt), event=event,
                         rng=rng)
    elif compiled:
        from dynamics.compiled import integrate_compiled  # numba, compiled on first use

        driver = partial(integrate_compiled, times=times, tableau=ADAPTIVE_METHODS[method],
                         rtol=rtol, atol=atol, event=event, max_steps=max_steps)
    elif backend_of(x0) == "jax" and engine != "native":
        from dynamics.integrators.diffrax_path import integrate_diffrax  # jax + diffrax

        driver = partial(integrate_diffrax, times=times, solver=method, rtol=rtol, atol=atol,
                         delta=delta, max_steps=max_steps)
    elif engine == "diffrax":
        raise ValueError("engine='diffrax' needs JAX arrays")
    else:
        driver = partial(integrate_adaptive, times=times, tableau=ADAPTIVE_METHODS[method],
                         rtol=rtol, atol=atol, event=event, max_steps=max_steps)
    return Plan(run_field, start, observer, driver, basis)


def _compiled(engine: str, method: str, field: Field, x: Array) -> bool:
    """Whether the compiled engine (``dynamics.compiled``) runs this call: where it applies
    under "auto", always under "compiled" (a ValueError saying why not where it cannot)."""
    if engine not in ("auto", "compiled"):
        return False
    from dynamics.compiled import unsupported

    reason = unsupported(field, x)
    if reason is None and method not in ADAPTIVE_METHODS:
        reason = f"it runs the adaptive methods {tuple(ADAPTIVE_METHODS)}, not {method!r}"
    if reason is not None and engine == "compiled":
        raise ValueError(f"engine='compiled' cannot run this call: {reason}; use "
                         "engine='native'")
    return reason is None


def _decide_reduce(reduce: bool | str, field: Field, x0: Array) -> bool:
    """Whether to integrate in the span of x0 (``dynamics.reduced``)."""
    exact = reducible(field, x0) and field.sigma == 0.0
    if reduce == "auto":
        return exact
    if reduce is True:
        if not exact:
            raise ValueError(
                "reduce=True needs a deterministic field with V = I (tokens stay in the span of "
                "their initial positions) and d >= n"
            )
        return True
    if reduce is False:
        return False
    raise ValueError(f"reduce must be 'auto', True or False, got {reduce!r}")
