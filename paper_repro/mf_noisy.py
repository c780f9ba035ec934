"""M4 - the kappa = 2 bifurcation of the noisy Kuramoto model (beta = 0; paper §2.9, Survey §7).

d theta_i = (1/n) sum_j sin(theta_j - theta_i) dt + sqrt(2/kappa) dW_i. Its mean field is the
Fokker-Planck equation d_t rho + d_theta(v rho) = (1/kappa) d_theta^2 rho (diffusion with a
plus sign on the right; paper.md §9 item 8), whose stationary states are von Mises with
concentration kappa r, r solving r = I_1(kappa r) / I_0(kappa r): r = 0 for kappa <= 2 and a
supercritical branch above. Shown: that branch, the stationary r of the spectral
Fokker-Planck solver, and the time-averaged r of n noisy particles (Euler-Maruyama,
``particle_order_parameter``), whose finite-n floor ~ n^{-1/2} is largest near kappa = 2.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dynamics import Kuramoto, simulate, uniform_angles
from dynamics.fields.noise import Noisy
from dynamics.meanfield import check_kappa, critical_kappa, kuramoto_order, pde_order_parameter
from dynamics.observables import order_parameter
from dynamics.validation import check_real
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

PDE_TOLERANCE, PARTICLE_TOLERANCE = 1e-4, 0.05  # |r - r(kappa)|; particles for kappa > 2.2


def particle_order_parameter(kappa: float, *, n: int = 1000, horizon: float = 100.0,
                             burn_in: float = 50.0, dt: float = 0.01, batch: int = 1,
                             seed: Any = 0) -> float:
    """Time- and batch-averaged |(1/n) sum e^{i theta_j}| over [burn_in, horizon] for the
    noisy Kuramoto particles (``Noisy(Kuramoto(), kappa)``, Euler-Maruyama, step dt) from
    uniform random angles. Finite n adds O(n^{-1/2}) (more near kappa = 2)."""
    kappa = check_kappa(kappa)
    check_real("dt", dt, positive=True)
    if not 0 <= burn_in < horizon:
        raise ValueError(f"need 0 <= burn_in < horizon, got {burn_in!r} and {horizon!r}")
    times = dt * np.arange(0, round(horizon / dt) + 1, max(round(0.5 / dt), 1))
    traj = simulate(Noisy(Kuramoto(), kappa), uniform_angles(seed, batch, n), times,
                    method="euler-maruyama", dt=dt, seed=seed,
                    observe=lambda theta: np.abs(order_parameter(theta)))
    return float(np.asarray(traj.values)[:, times >= burn_in].mean())


def compute(request: FigureRequest):
    """r(kappa): the self-consistent branch, the Fokker-Planck solver and the particles."""
    kappas = np.array(request.pick([1.0, 1.5, 3.0, 4.0, 6.0],
                                   [0.5, 1.0, 1.5, 1.8, 2.2, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
                                   tiny=[1.0, 3.0, 4.0]))
    # from uniform angles the order parameter needs ~ log(n) / (1/2 - 1/kappa) to grow
    n, horizon = request.pick((800, 60.0), (3000, 300.0), tiny=(500, 40.0))
    branch_kappa = np.linspace(0.5, kappas.max(), 300)
    # the PDE relaxes at rate ~ |1/2 - 1/kappa| (the linear rate of mode 1), slowly near 2
    pde_horizons = np.maximum(80.0, 15.0 / np.abs(0.5 - 1.0 / kappas))
    return dataset({
        "branch": (("branch_kappa",), [kuramoto_order(float(k)) for k in branch_kappa],
                   {"long_name": "r = I_1(kappa r)/I_0(kappa r)"}),
        "self_consistent": (("kappa",), [kuramoto_order(float(k)) for k in kappas]),
        "pde": (("kappa",), [pde_order_parameter(float(k), horizon=float(T), modes=16)
                             for k, T in zip(kappas, pde_horizons, strict=True)],
                {"long_name": "stationary r, Fokker-Planck"}),
        "particles": (("kappa",), [particle_order_parameter(
            float(k), n=n, horizon=horizon, burn_in=horizon / 2, seed=request.seed)
            for k in kappas], {"long_name": "time-averaged r, particles"}),
        "pde_horizon": (("kappa",), pde_horizons),
    }, {"kappa": kappas, "branch_kappa": branch_kappa}, beta=0.0, n=n, horizon=horizon,
        dt=0.01, method="euler-maruyama", pde_modes=16)


@register("M4", "noisy Kuramoto (beta = 0): order parameter r(kappa), bifurcation at kappa = 2",
          compute)
def draw(ds, request: FigureRequest):
    params = parameters(ds)
    n, kappas, exact = params["n"], ds["kappa"].values, ds["self_consistent"].values
    pde, particles = ds["pde"].values, ds["particles"].values
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(ds["branch_kappa"].values, ds["branch"].values, "k-",
            label=r"$r = I_1(\kappa r)/I_0(\kappa r)$")
    ax.plot(kappas, pde, "s", mfc="none", color="#3658bf", markersize=8,
            label="Fokker-Planck (spectral)")
    ax.plot(kappas, particles, "o", color="#c0392b", label=f"particles, n = {n}")
    ax.axvline(critical_kappa(0.0), color="k", linestyle=":", linewidth=0.8)
    ax.set_xlabel(r"$\kappa$ (noise $\sqrt{2/\kappa}$)")
    ax.set_ylabel("stationary order parameter r")
    ax.set_title(r"noisy Kuramoto, $\beta = 0$: pitchfork at $\kappa = 2$")
    ax.legend(fontsize=8)
    data = {"parameters": params, "pde_horizon": ds["pde_horizon"].values, "kappa": kappas,
            "self_consistent": exact, "pde": pde, "particles": particles}
    checks = [
        Check("M4: max |Fokker-Planck r - r(kappa)|", float(np.max(np.abs(pde - exact))),
              PDE_TOLERANCE, "<"),
        Check("M4: max |particle r - r(kappa)| for kappa > 2.2",
              float(np.max(np.abs(particles - exact)[kappas > 2.2])), PARTICLE_TOLERANCE, "<"),
        Check("M4: particle r below kappa = 2 (finite-n floor)",
              float(particles[kappas < 2].max()), 4 / np.sqrt(n), "<", "bound 4/sqrt(n)"),
    ]
    return save_figure(fig, request, "M4_noisy_bifurcation", data, checks), checks
