"""argparse types shared by the command lines of ``experiments`` (standard library only, so
that every command line can import it before ``--threads`` takes effect)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value
