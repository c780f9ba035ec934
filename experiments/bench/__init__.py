"""Benchmarks: ratios against named baselines measured in one run (``python -m experiments bench``).

A benchmark *suite* (``registry.Suite``) names the operations it times, the
implementations it compares (the package's default path and independent
baselines), the materialised reference every implementation is checked against
before it is timed, and the ratios it reports. ``runner.run_suite`` checks, times
(``timing``) and measures peak memory in fresh processes (``memory``); ``report``
prints the tables and writes JSON. Every benchmark - the timed suites and the programs
``study`` (seeds/s of a study against a loop of ``simulate`` calls) and ``f3-panel`` (the
Gram-space F3 study against the authors' dense scheme) - is named in
``experiments.registry.SUITES`` and run by the one command line, ``cli``.

The command line imports neither numpy nor torch at module level, so ``--threads`` is
applied before their thread pools start.
"""
