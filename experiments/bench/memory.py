"""Peak memory of one benchmark call, measured in a fresh process.

The parent starts ``python -m experiments.bench.memory SPEC`` for one (suite,
implementation, operation, case). The child fixes the threads, runs the call once
on a small case (libraries, kernels and thread pools get loaded), builds the
full-size inputs, then resets the kernel's resident-set high-water mark (writing
5 to /proc/self/clear_refs) and runs the call once. The peak is

    VmHWM after the call - VmRSS before it        (/proc/self/status)

i.e. the most memory the call held at once, output included. Where clear_refs is
not writable the child uses the growth of getrusage's ru_maxrss instead, which
misses any peak below the process's earlier high-water mark (reported as method).
A fresh process per call keeps one path's freed-but-cached memory out of another's.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
from typing import Any

from experiments.bench.registry import Case, load_suite
from experiments.bench.timing import THREAD_VARIABLES, fix_threads, proc_field


def _status_kib(field: str) -> int:
    value = proc_field("/proc/self/status", field)
    if value is None:
        raise OSError(f"{field} not in /proc/self/status")
    return int(value.split()[0])


def peak_of(call: Any) -> tuple[float, str]:
    """Run ``call()`` once; MiB it added at its peak over the current resident set."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the resident-set high-water mark VmHWM
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        call()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (after - before) / 1024, "ru_maxrss-growth"
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) / 1024, "VmHWM-after-clear_refs"


def measure_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """The child's work; ``spec`` has suite, path, op, threads, seed and the case fields."""
    fix_threads(spec["threads"])
    suite = load_suite(spec["suite"]).for_device(spec["case"].get("device", "cpu"))
    impl = suite.implementation(spec["path"])
    case = Case(**spec["case"])
    small = dataclasses.replace(case, n=min(case.n, 64))
    impl.prepare(small, suite.inputs(small, spec["seed"]))[spec["op"]]()
    # compile the large-n kernel (numba) the paths take from SYMMETRIC_MIN_N tokens on, so
    # its one-time compilation is not counted as the call's memory
    from attention.symmetric import symmetric_rhs

    symmetric_rhs(suite.inputs(small, spec["seed"])[0].astype(case.dtype), 1.0)
    call = impl.prepare(case, suite.inputs(case, spec["seed"]))[spec["op"]]
    peak_mib, method = peak_of(call)
    return {"peak_mib": peak_mib, "method": method}


def measure_peak(
    suite: str, path: str, op: str, case: Case, *, threads: int, seed: int = 0,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Peak MiB of one call in a fresh process: {"peak_mib", "method"} or {"error"}."""
    spec = {
        "suite": suite, "path": path, "op": op, "threads": threads, "seed": seed,
        "case": dataclasses.asdict(case),
    }
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads)))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.bench.memory", json.dumps(spec)],
            capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"child exited with {proc.returncode}: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure_in_child(json.loads(sys.argv[1]))))
