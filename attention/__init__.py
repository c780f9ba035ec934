"""attention: attention operators, defined once for numpy, torch and JAX."""

from attention.dispatch import attend_fast
from attention.reference import attend, attend_chunked, attention_weights, causal_mask, scores

__all__ = ["attend", "attend_chunked", "attend_fast", "attention_weights", "causal_mask", "scores"]
