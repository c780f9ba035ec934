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
CPU the deterministic methods (adaptive, and "euler", "rk4", "authors") run SA, USA and
the circle models in float64 on the compiled engine (``dynamics.compiled``: each member its
own compiled loop, members in parallel; ``engine="compiled"`` insists on it, ``"native"``
keeps the numpy path); both take the same steps. ``Trajectory.engine`` says which ran.
The clustering event works on the sphere and on the circle (where <x_i, x_j> is
cos(theta_i - theta_j)).

Nothing non-finite is returned: a velocity that becomes NaN or infinite (numpy arrays and
CPU torch tensors: one ``isfinite`` reduction per evaluation of the field, so the error
gives the time of that evaluation) or a recorded state that is (every path, CUDA, JAX
and the compiled engine included: one reduction over the output states) stops
``simulate`` with a :class:`~dynamics.validation.NonFiniteStateError` naming the member
and the time. (On CUDA and JAX with ``observe=`` the states are not kept, so nothing is
checked there.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, backend_of, namespace, resolve_dtype, to_numpy
from dynamics.fields.base import Field, Wrapper
from dynamics.gpu import ENGINES, GraphedScheme, route
from dynamics.integrators.adaptive import integrate_adaptive
from dynamics.integrators.fixed import RawSolution, integrate_fixed
from dynamics.integrators.recording import ClusterEvent
from dynamics.integrators.schemes import FIXED_STEP_SCHEMES
from dynamics.integrators.tableaux import DOPRI5, TSIT5
from dynamics.observables import is_rotation_invariant
from dynamics.reduced import from_span, reducible, span_basis, to_span
from dynamics.validation import (
    check_delta,
    check_real,
    check_times,
    check_tokens,
    is_traced,
    non_finite_error,
)

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
    engine:         what integrated it: "compiled" (``dynamics.compiled``), "native" (the
                    numpy/torch drivers), "triton" / "triton-graphs" (the fused CUDA field)
                    or "diffrax" (JAX)
    """

    times: np.ndarray
    values: Array
    cluster_time: np.ndarray | None
    accepted_steps: np.ndarray
    rejected_steps: np.ndarray
    method: str
    reduced: bool
    observable: str = "state"
    engine: str = "native"

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
    engine: str = "native"

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
    if delta is not None and field.space.name not in ("sphere", "angles"):
        raise ValueError("stop_when_clustered applies to tokens on the sphere or the circle")
    plan = make_plan(field, x0, times, method=method, dt=dt, rtol=rtol, atol=atol, delta=delta,
                     observe=observe, seed=seed, reduce=reduce, max_steps=max_steps,
                     engine=engine)
    bar = _Progress(float(times[0]), float(times[-1]), progress, f"simulate[{method}]")
    try:
        raw = plan.run(bar)
    finally:
        bar.close()
    values = raw.values
    if observe is None:
        check_finite_states(values, times)
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
        engine=plan.engine,
    )


def _bad_members(v: Array) -> np.ndarray | None:
    """None when v is finite (one reduction), else host booleans (batch,) of the members
    holding a NaN or infinite entry."""
    xp = namespace(v)
    if bool(xp.all(xp.isfinite(v))):
        return None
    finite = to_numpy(xp.isfinite(v)).reshape(v.shape[0], -1)
    return ~finite.all(axis=1)


@dataclass(frozen=True)
class _FiniteGuard(Wrapper):
    """The run field, checking each velocity: a non-finite one raises NonFiniteStateError
    (member and time) instead of flowing into the states (or into endless step rejections
    of the adaptive driver). Everything else is the inner field's."""

    field: Field

    INNER: ClassVar[str] = "field"

    @property
    def sigma(self) -> float:  # type: ignore[override]
        return self.field.sigma

    @property
    def parts(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(_FiniteGuard(p) for p in self.field.parts)

    def _checked(self, t: Any, v: Array, what: str) -> Array:
        bad = _bad_members(v)
        if bad is not None:
            times = np.broadcast_to(np.asarray(to_numpy(t), dtype=float), bad.shape)
            raise non_finite_error(what, bad, float(times[np.argmax(bad)]))
        return v

    def __call__(self, t: Any, x: Array) -> Array:
        return self._checked(t, self.field(t, x), "the velocity")

    def drive(self, t: Any, x: Array) -> Array:
        return self._checked(t, self.field.drive(t, x), "the drive")

    def retract(self, t: Any, y: Array) -> Array:
        return self.field.retract(t, y)

    def fusion(self):
        return self.field.fusion()


def _host_arrays(x: Array) -> bool:
    """numpy arrays or CPU torch tensors: where a host check per evaluation costs nothing
    much (on CUDA it would serialise the launches; the outputs are checked there)."""
    backend = backend_of(x)
    return backend == "numpy" or (backend == "torch" and x.device.type == "cpu")


def check_finite_states(values: Array, times: np.ndarray) -> None:
    """Raise NonFiniteStateError if recorded states (batch, T, ...) hold a NaN or inf: the
    first member affected and the first output time at which it is."""
    if is_traced(values):
        return
    bad = _bad_members(values)
    if bad is None:
        return
    finite = to_numpy(namespace(values).isfinite(values)).reshape(*values.shape[:2], -1)
    first = int(np.flatnonzero(bad)[0])
    k = int(np.argmin(finite[first].all(axis=1)))
    raise non_finite_error("the state", bad, float(times[k]))


def _compiled_checked(field: Field, x0: Array, *, method: str, observe, progress,
                      **options) -> RawSolution:
    """The compiled engine (adaptive or fixed-step driver), its states checked before
    ``observe`` sees them."""
    from dynamics.compiled import integrate_compiled, integrate_compiled_fixed  # numba

    if method in ADAPTIVE_METHODS:
        raw = integrate_compiled(field, x0, tableau=ADAPTIVE_METHODS[method], observe=None,
                                 progress=progress, **options)
    else:
        raw = integrate_compiled_fixed(field, x0, method=method, observe=None,
                                       progress=progress, **options)
    check_finite_states(raw.values, options["times"])
    if observe is not _identity:
        xp = namespace(raw.values)
        values = xp.stack([observe(raw.values[:, k]) for k in range(raw.values.shape[1])],
                          axis=1)
        raw = RawSolution(values, raw.cluster_time, raw.accepted, raw.rejected)
    return raw


def which_engine(field: Field, x0: Array, *, method: str = "dopri5", dt: float | None = None,
                 engine: str = "auto", reduce: bool | str = "auto", dtype: Any = None,
                 **_: Any) -> str:
    """The engine ``simulate`` takes for this field, these tokens and options ("compiled",
    "native", "triton", "triton-graphs" or "diffrax"; see ``Trajectory.engine``), decided
    exactly as ``simulate`` decides it; nothing is integrated. Other ``simulate`` options
    are accepted and ignored (they do not change the engine)."""
    _check_options(field, method, engine, dt, 1e-6, 1e-9, None)
    squeeze = x0.ndim == field.space.state_rank - 1
    x0 = _prepared_states(field, x0[None] if squeeze else x0, dtype)
    plan = make_plan(field.on(x0), x0, check_times([0.0, 1.0]), method=method, dt=dt, rtol=1e-6,
                     atol=1e-9, delta=None, observe=None, seed=None, reduce=reduce,
                     max_steps=1, engine=engine)
    return plan.engine


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
    used = "compiled" if compiled else "native"
    if engine.startswith("triton") or (engine == "auto" and backend_of(x0) == "torch"
                                       and not compiled):
        routed = route(run_field, start, engine)
        if routed is not run_field:
            used = "triton-graphs" if engine == "triton-graphs" else "triton"
        run_field = routed
        if engine == "triton-graphs" and scheme is not None:
            scheme = GraphedScheme(scheme, float(dt))
    event = ClusterEvent(delta, int(x0.shape[0]), float(times[0]), points=field.space.points)
    if _host_arrays(x0) and not compiled and engine != "diffrax":
        run_field = _FiniteGuard(run_field)
    if compiled:
        options = ({"dt": float(dt)} if scheme is not None else
                   {"rtol": rtol, "atol": atol, "max_steps": max_steps})
        driver = partial(_compiled_checked, times=times, method=method, event=event, **options)
    elif scheme is not None:
        rng = np.random.default_rng(seed) if field.sigma != 0.0 else None
        driver = partial(integrate_fixed, times=times, scheme=scheme, dt=float(dt), event=event,
                         rng=rng)
    elif backend_of(x0) == "jax" and engine != "native":
        from dynamics.integrators.diffrax_path import integrate_diffrax  # jax + diffrax

        used = "diffrax"
        driver = partial(integrate_diffrax, times=times, solver=method, rtol=rtol, atol=atol,
                         delta=delta, max_steps=max_steps)
    elif engine == "diffrax":
        raise ValueError("engine='diffrax' needs JAX arrays")
    else:
        driver = partial(integrate_adaptive, times=times, tableau=ADAPTIVE_METHODS[method],
                         rtol=rtol, atol=atol, event=event, max_steps=max_steps)
    return Plan(run_field, start, observer, driver, basis, used)


def _compiled(engine: str, method: str, field: Field, x: Array) -> bool:
    """Whether the compiled engine (``dynamics.compiled``) runs this call: where it applies
    under "auto", always under "compiled" (a ValueError saying why not where it cannot)."""
    if engine not in ("auto", "compiled"):
        return False
    from dynamics.compiled import unsupported

    reason = unsupported(field, x, method)
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
