"""Tiny causal language models built from the package's attention layers, trained on
multi-query associative recall (MQAR): ``mqar`` (the seeded data), ``model`` (the model,
its safetensors checkpoints and its operators as float64 numpy), ``train`` (training,
evaluation, the curve as an xarray Dataset, ``train_variants``) and ``cli``
(``python -m experiments train-variants``).

Only the standard library is imported here; the submodules load torch and numpy.
"""
