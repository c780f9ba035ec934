"""GPU measurements of the low-dimensional kernel: ``python -m experiments.bench.lowdim_gpu``.

Stages (all by default; name some to run those): ``accuracy`` - the flow right-hand side
of both kernels against float64 at n = 8192 for d in {2, 3, 4}, softmax, causal and USA,
beta up to 150; ``tiles`` - every tile shape at n = 65536, d = 3, with the special-function
exponential (``ex2.approx.ftz``) and with ``tl.exp2``; ``large`` - n = 2^20: the tuned
default and the tile shapes, the online kernel, bf16 inputs, d = 2 and 4, causal, USA,
batch; errors there on random rows against float64. One JSON line per measurement on
stdout, and appended to ``--out FILE`` when given. Points are uniform on the sphere,
beta = 1 unless stated; times are medians of synchronised wall-clock runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json

import torch

from attention.triton import Tiles, flow_rhs, lowdim
from attention.triton.launch import LOWDIM_TILES
from experiments.bench.timing import measure

STAGES = ("accuracy", "tiles", "large")
EXTRA_TILES = (Tiles(64, 16, 2, 1), Tiles(32, 32, 1, 1), Tiles(64, 64, 4, 1))


def _median_s(fn, repeats: int) -> float:
    """Median seconds per call after a warm-up, synchronised (``experiments.bench.timing``)."""
    timings, _ = measure({"call": fn}, repeats, pause_s=0.0, sync=torch.cuda.synchronize)
    return timings["call"].median_s


def _sphere(B: int, n: int, d: int, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(B, n, d, device="cuda", generator=g, dtype=torch.float64)
    return (x / x.norm(dim=-1, keepdim=True)).to(dtype)


def _rhs(x: torch.Tensor, beta: float, **options) -> torch.Tensor:
    return flow_rhs(x, x[:, None], x[:, None], x[:, None], beta, **options)


def _exact(x, beta, rows=None, causal=False, usa=False) -> torch.Tensor:
    """P^perp_x sum_j A_ij x_j in float64 for the given rows (all by default), in blocks."""
    xd = x.double()
    n = xd.shape[1]
    rows = torch.arange(n, device="cuda") if rows is None else rows
    parts = []
    for start in range(0, len(rows), 2048):
        r = rows[start:start + 2048]
        s = beta * xd[:, r] @ xd.transpose(-1, -2)
        if causal:
            s = s.masked_fill(torch.arange(n, device="cuda")[None, None] > r[None, :, None],
                              float("-inf"))
        drive = (torch.exp(s) / n if usa else torch.softmax(s, -1)) @ xd
        xr = xd[:, r]
        parts.append(drive - (drive * xr).sum(-1, keepdim=True) * xr)
    return torch.cat(parts, 1)


def _relative(out, ref) -> float:
    return float((out.double() - ref).abs().max() / ref.abs().max())


def accuracy(log) -> None:
    for d in (2, 3, 4):
        x = _sphere(2, 8192, d)
        for beta in (1.0, 9.0, 40.0, 150.0):
            for causal, usa in ((False, False), (True, False), (False, True)):
                if (usa and beta > 40) or (d != 3 and (causal or usa or beta == 40.0)):
                    continue
                ref = _exact(x, beta, causal=causal, usa=usa)
                norm = "usa" if usa else "softmax"
                for kernel in ("lowdim", "online"):
                    out = _rhs(x, beta, kernel=kernel, causal=causal, normalization=norm)
                    log(stage="accuracy", n=8192, d=d, beta=beta, causal=causal, norm=norm,
                        kernel=kernel, rel_err=_relative(out, ref))


def tiles(log) -> None:
    x = _sphere(1, 65536, 3)
    try:
        for fast in (True, False):
            lowdim.FAST_EXP = fast
            for t in (*LOWDIM_TILES, *EXTRA_TILES) if fast else LOWDIM_TILES[:2]:
                ms = 1e3 * _median_s(lambda t=t: _rhs(x, 1.0, kernel="lowdim", tiles=t), 7)
                log(stage="tiles", n=65536, d=3, tiles=[t.block_m, t.block_n, t.num_warps],
                    fast_exp=fast, ms=ms)
    finally:
        lowdim.FAST_EXP = True
    for kernel in ("auto", "online"):
        log(stage="tiles", n=65536, d=3, kernel=kernel,
            ms=1e3 * _median_s(lambda k=kernel: _rhs(x, 1.0, kernel=k), 7))


def large(log) -> None:
    n = 1 << 20
    x = _sphere(1, n, 3)
    rows = torch.randint(0, n, (256,), device="cuda")
    ref = _exact(x, 1.0, rows=rows)
    for t in (None, *LOWDIM_TILES[:2]):
        s = _median_s(lambda t=t: _rhs(x, 1.0, tiles=t), 3)
        out = _rhs(x, 1.0, tiles=t)
        log(stage="large", n=n, d=3, tiles=None if t is None else [t.block_m, t.block_n,
                                                                   t.num_warps],
            s=s, exp_per_s=n * n / s, rel_err_256_rows=_relative(out[:, rows], ref))
    log(stage="large", n=n, d=3, kernel="online",
        s=_median_s(lambda: _rhs(x, 1.0, kernel="online"), 1))
    xb = x.to(torch.bfloat16)
    log(stage="large", n=n, d=3, dtype="bfloat16", s=_median_s(lambda: _rhs(xb, 1.0), 2))
    for d in (2, 4):
        xd = _sphere(1, n, d)
        log(stage="large", n=n, d=d, s=_median_s(lambda xd=xd: _rhs(xd, 1.0), 2))
    for causal, norm in ((True, "softmax"), (False, "usa")):
        s = _median_s(lambda c=causal, z=norm: _rhs(x, 1.0, causal=c, normalization=z), 2)
        out = _rhs(x, 1.0, causal=causal, normalization=norm)
        ref = _exact(x, 1.0, rows=rows, causal=causal, usa=norm == "usa")
        log(stage="large", n=n, d=3, causal=causal, norm=norm, s=s,
            rel_err_256_rows=_relative(out[:, rows], ref))
    x4 = _sphere(4, 1 << 18, 3)
    log(stage="large", n=1 << 18, batch=4, d=3, s=_median_s(lambda: _rhs(x4, 1.0), 2))
    x16 = _sphere(16, 4096, 3)
    for kernel in ("auto", "online"):
        log(stage="large", n=4096, batch=16, d=3, kernel=kernel,
            ms=1e3 * _median_s(lambda k=kernel: _rhs(x16, 1.0, kernel=k), 9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.lowdim_gpu",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE", help=f"some of {STAGES}")
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {STAGES}")
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    sink = open(args.out, "a") if args.out else None

    def log(**fields) -> None:
        line = json.dumps(fields)
        print(line, flush=True)
        if sink is not None:
            sink.write(line + "\n")
            sink.flush()

    import triton

    log(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    for stage in args.stages or STAGES:
        {"accuracy": accuracy, "tiles": tiles, "large": large}[stage](log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
