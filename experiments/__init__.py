"""experiments: the studies and benchmarks of attention-flows, behind one command line.

    python -m experiments <command> [options]      (or the console script ``attention-flows``)

Where each concept lives:

* ``registry``   - every name a config or the command line can give: commands (with their
  help), study kinds, fields, integrator methods and engines, initial kinds, benchmarks;
* ``schema``     - the config's sections as checked dataclasses; ``config`` reads TOML into them;
* ``fields``     - the fields a study can flow; ``chunks`` - work chunks and their members;
* ``studies``    - the study kinds (what a chunk computes, stores, summarises and plots);
* ``runner``, ``store`` - running or resuming a study into a zarr store; ``statistics`` -
  censored times and fits; ``plotting`` - the figures of a store;
* ``cli``, ``__main__`` - the command line; ``bench`` - benchmarks against named baselines.

Layers, each importing only those before it: ``registry`` (nothing of this package; it
loads the modules of its tables by name on first use), ``schema``, ``fields``, ``chunks``,
``statistics``, ``studies``, ``config``, ``store``, ``runner``, ``plotting``, ``cli``,
``bench``. The command line imports only the modules that build its parsers, which keep
numpy and torch out of their top level: thread settings given on the command line then
take effect before any numerical library starts its thread pools.

    python -m experiments clustering-time --config experiments/configs/clustering_time_small.toml
    python -m experiments plot out/clustering_time_small.zarr
"""
