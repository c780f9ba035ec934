"""Integrators on a space: fixed-step schemes, adaptive embedded pairs, the diffrax path."""
