"""Machine code of the low-dimensional kernel without a GPU: ``python -m experiments.bench.sass``.

Compiles ``attention.triton.lowdim.lowdim_kernel`` for an H100 (sm_90) with Triton's own
ptxas, disassembles it with the cuobjdump that ships in the triton wheel, and prints per tile
shape the registers and stack (spills) per thread and the inner loop's instruction count per
(query, key) pair. The right-hand side's time on a GPU follows the instructions per pair
(a scheduler issues one warp instruction per clock) and the special-function unit's one
exponential per pair, so this ranks tile shapes before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import os
import re
import subprocess
import tempfile

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

TILES = ((64, 32, 4), (32, 64, 2), (128, 32, 8), (64, 16, 2), (64, 64, 4), (32, 32, 1))


def compile_lowdim(e: int = 3, f: int = 3, block_m: int = 64, block_n: int = 32,
                   num_warps: int = 4, dtype: str = "fp32", epilogue: int = 1):
    """The compiled kernel (flow right-hand side, one head, V = K) for sm_90."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from attention.triton import lowdim

    names = list(inspect.signature(lowdim.lowdim_kernel.fn).parameters)
    constants = dict(E=e, F=f, NORM=0, CAUSAL=False, EPILOGUE=epilogue, SEPARATE=False,
                     HEAD_LOOP=False, WRITE_LSE=False, V_IS_K=True, FAST_EXP=True,
                     ACC_F64=False, BLOCK_M=block_m, BLOCK_N=block_n)
    signature = {}
    for name in names:
        if name in constants:
            signature[name] = "constexpr"
        elif name in ("Q", "K", "V", "X", "OUT"):
            signature[name] = f"*{dtype}"
        elif name in ("LSE", "BETA", "KMAX"):
            signature[name] = "*fp32"
        else:
            signature[name] = "i32"
    source = ASTSource(fn=lowdim.lowdim_kernel, signature=signature,
                       constexprs={(names.index(k),): v for k, v in constants.items()})
    return triton.compile(source, target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": num_warps, "num_stages": 1})


def _cuobjdump(cubin: bytes, flag: str) -> str:
    import triton.backends.nvidia as nvidia

    tool = os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        return subprocess.run([tool, flag, handle.name], capture_output=True, text=True,
                              check=True).stdout


def inner_loops(sass: str) -> list[tuple[int, int]]:
    """(instructions, exponentials) of every loop (a backward branch) holding MUFU.EX2."""
    code = [(int(a, 16), text.strip()) for a, text in
            re.findall(r"^\s+/\*([0-9a-f]+)\*/\s+(.*?);", sass, re.M)]
    index = {address: i for i, (address, _) in enumerate(code)}
    loops = []
    for i, (address, text) in enumerate(code):
        target = re.search(r"BRA (0x[0-9a-f]+)", text)
        if target and int(target.group(1), 16) < address:
            body = code[index[int(target.group(1), 16)]:i + 1]
            ops = collections.Counter(t.split()[1] if t.startswith("@") else t.split()[0]
                                      for _, t in body)
            if ops.get("MUFU.EX2"):
                loops.append((len(body), ops["MUFU.EX2"]))
    return loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.sass",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=3, help="coordinates (<= 4)")
    args = parser.parse_args(argv)
    print("tile (m x n, warps) | registers | stack bytes | loop: instructions / pairs per "
          "thread = instructions per pair")
    for block_m, block_n, warps in TILES:
        kernel = compile_lowdim(args.d, args.d, block_m, block_n, warps)
        usage = _cuobjdump(kernel.asm["cubin"], "-res-usage")
        regs, stack = re.search(r"REG:(\d+) STACK:(\d+)", usage).groups()
        loops = inner_loops(_cuobjdump(kernel.asm["cubin"], "-sass"))
        main_loop = min(loops, key=lambda lp: lp[0] / lp[1])  # the unmasked sweep
        print(f"{block_m} x {block_n}, {warps} | {regs} | {stack} | {main_loop[0]} / "
              f"{main_loop[1]} = {main_loop[0] / main_loop[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
