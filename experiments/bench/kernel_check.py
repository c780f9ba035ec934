"""Correctness of the Triton kernels on a GPU: ``python -m experiments.bench.kernel_check``.

Every tile configuration of every kernel family (the online-softmax families and the
low-dimensional kernel), every input dtype (float32, bf16, fp16 at d in {2, 3, 16, 64,
128}; float64 at d <= 64), both ways of forming the weighted sum of the values, the
float32 dot precisions, and the low-dimensional kernel's shift (normalisations, large
beta, a key far longer than the others, which forces its exact first pass), against the
materialised float64 reference computed on the same device. Inputs are fresh random
draws. Before each launch the allocator's free memory is filled with NaN (a large NaN
tensor is allocated and released, so the kernel's ``torch.empty`` output reuses it): an
element the kernel fails to write stays NaN and fails the check. Prints one table and
exits 1 on any failure. Sizes are ragged (n = 1000, not a multiple of any tile).
``--only GROUP ...`` runs some groups (tiles, lowdim, dtypes, pv, precision).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

TOLERANCE = {torch.float64: 1e-12, torch.float32: 5e-6, torch.float16: 4e-3,
             torch.bfloat16: 3e-2}


def _reference(q, k, v, beta, causal, x=None, normalization="softmax"):
    from attention.reference import attend

    H, G = q.shape[1], k.shape[1]
    k = k.repeat_interleave(H // G, dim=1).double()
    v = v.repeat_interleave(H // G, dim=1).double()
    out = attend(q.double(), k, v, beta, causal=causal, normalization=normalization)
    if x is None:
        return out
    drive = out.sum(1)
    xd = x.double()
    return drive - (xd * drive).sum(-1, keepdim=True) * xd


def _error(out, ref) -> float:
    out = out.double()
    if torch.isnan(out).any():
        return float("inf")
    return float((out - ref).abs().max() / ref.abs().max())


GROUPS = ("tiles", "lowdim", "dtypes", "pv", "precision")
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _tiles(t) -> str:
    return f"{t.block_m}x{t.block_n} w{t.num_warps}"


def run(device: str = "cuda", n: int = 1000, seed: int = 0, log=None,
        groups: tuple[str, ...] = GROUPS) -> list[tuple]:
    """The checks of ``groups``; rows (group, case, dtype, error, tolerance, ok, seconds),
    each also passed to ``log`` as it completes."""
    from attention.triton import FAMILIES, flow_rhs, fused_attention
    from attention.triton.launch import LOWDIM_TILES

    rng = np.random.default_rng(seed)
    rows = []

    def inputs(d, dtype, B=2, H=2, G=1):
        """Random (q, k, v): H query heads, G key/value heads."""
        def draw(*shape, scale=1.0):
            return torch.as_tensor(scale * rng.standard_normal(shape)).to(device, dtype)

        return draw(B, H, n, d, scale=0.6), draw(B, G, n, d, scale=0.6), draw(B, G, n, d)

    def check(group, case, dtype, fn, ref, tol):
        if group not in groups:
            return
        poison = torch.full((1 << 26,), float("nan"), device=device)
        del poison
        start = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        err = _error(out, ref)
        rows.append((group, case, str(dtype).replace("torch.", ""), err, tol, err <= tol,
                     time.perf_counter() - start))
        if log is not None:
            log(rows[-1])

    def attention(group, case, qkv, beta, tol, causal=False, normalization="softmax",
                  **options):
        """``fused_attention`` of (q, k, v) against the float64 reference."""
        q, k, v = qkv
        check(group, case, q.dtype, lambda: fused_attention(
            q, k, v, beta, causal=causal, normalization=normalization, **options),
            _reference(q, k, v, beta, causal, normalization=normalization), tol)

    family_inputs = {"dot32s": (3, torch.float32), "dot32": (64, torch.float32),
                     "dot16": (64, torch.bfloat16), "f64": (3, torch.float64)}
    for family, tiles_list in FAMILIES.items():
        d, dtype = family_inputs[family]
        for tiles in tiles_list:
            for causal in (False, True):
                attention("tiles", f"{family} {_tiles(tiles)} causal={causal}",
                          inputs(d, dtype), 0.9, TOLERANCE[dtype], causal=causal, tiles=tiles,
                          precision="tf32x3", kernel="online")
    for tiles in LOWDIM_TILES:
        for causal in (False, True):
            attention("lowdim", f"{_tiles(tiles)} causal={causal}", inputs(3, torch.float32),
                      0.9, TOLERANCE[torch.float32], causal=causal, tiles=tiles, kernel="lowdim")
    for dtype in DTYPES:
        for d in (2, 3, 4):
            for normalization in ("softmax", "usa"):
                attention("lowdim", f"d={d} {normalization}", inputs(d, dtype), 1.3,
                          TOLERANCE[dtype], normalization=normalization, kernel="lowdim")
    for beta in (30.0, 300.0):
        q, k, v = inputs(3, torch.float32)
        k[:, :, 7] *= 40.0  # one long key: the bound U_i is far above every row maximum
        attention("lowdim", f"d=3 beta={beta:g}, one key 40x longer", (q, k, v), beta,
                  TOLERANCE[torch.float32] * (1 + beta), kernel="lowdim")
    for dtype in DTYPES:
        for d in (2, 3, 16, 64, 128) if dtype != torch.float64 else (2, 3, 16, 64):
            attention("dtypes", f"d={d} heads causal", inputs(d, dtype), 1.1, TOLERANCE[dtype],
                      causal=True)
            x = torch.as_tensor(rng.standard_normal((2, n, d))).to(device, dtype)
            x = x / torch.linalg.vector_norm(x.float(), dim=-1, keepdim=True).to(dtype)
            xs = x[:, None]
            check("dtypes", f"d={d} flow tangent", dtype,
                  lambda x=x, xs=xs, d=d: flow_rhs(x, xs.expand(2, 2, n, d), xs, xs, 2.0),
                  _reference(xs.expand(2, 2, n, d), xs, xs, 2.0, False, x),
                  TOLERANCE[dtype] * 10)
    for pv in ("dot", "fma"):
        attention("pv", f"d=3 pv={pv} causal", inputs(3, torch.float32), 1.4,
                  TOLERANCE[torch.float32], causal=True, pv=pv)
    for precision, tol in {"ieee": 5e-6, "tf32x3": 5e-6, "tf32": 5e-3}.items():
        attention("precision", f"d=64 {precision}", inputs(64, torch.float32, B=1, G=2), 1.0,
                  tol, precision=precision)
    return rows


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: run tests/triton (interpreter) instead", file=sys.stderr)
        return 2
    import triton

    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {triton.__version__}")
    groups = tuple(sys.argv[sys.argv.index("--only") + 1:]) if "--only" in sys.argv else GROUPS
    unknown = set(groups) - set(GROUPS)
    if unknown:
        print(f"unknown groups {sorted(unknown)}; choose from {GROUPS}", file=sys.stderr)
        return 2
    rows = run(groups=groups, log=lambda row: print(
        f"{row[0]:9s} {row[1]:40s} {row[2]:8s} {row[3]:.1e} (tol {row[4]:.0e}) "
        f"{'ok' if row[5] else 'FAIL'} {row[6]:.1f}s", flush=True))
    from experiments.bench.report import markdown_table

    table = [[g, c, dt, f"{e:.1e}", f"{t:.0e}", "ok" if ok else "FAIL", f"{s:.1f}"]
             for g, c, dt, e, t, ok, s in rows]
    print(markdown_table(["group", "case", "dtype", "rel. error", "tolerance", "", "s"], table))
    failed = sum(not r[5] for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
