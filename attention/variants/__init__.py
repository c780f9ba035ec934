"""The heads of each attention variant: how queries, keys, values and outputs are factored.

* ``standard``: MHA, GQA, MQA (per-head queries, G shared key/value groups);
* ``mla``:      multi-head latent attention, with its absorbed decode path;
* ``mfa``:      multi-matrix factorisation attention, and MFA-KR (key reuse);
* ``dma``:      the dynamic-mask bias (a key-side "mass") with its top-w mask;
* ``saq``:      staircase quantisation of an MQA cache.
"""
