"""Benchmarks: ratios against named baselines measured in one run (``python -m experiments bench``).

A benchmark *suite* (``registry.Suite``) names the operations it times, the
implementations it compares (the package's default path and independent
baselines), the materialised reference every implementation is checked against
before it is timed, and the ratios it reports. ``runner.run_suite`` checks, times
(``timing``) and measures peak memory in fresh processes (``memory``); ``report``
prints the tables and writes JSON. New suites (GPU kernels, the reduced solver)
register in ``registry.SUITE_MODULES``.

Nothing here imports numpy or torch at module level, so ``--threads`` is applied
before their thread pools start.
"""
