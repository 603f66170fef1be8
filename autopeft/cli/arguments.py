"""Argument types shared by the commands: each rejects a bad value with a message argparse turns into exit 2."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (trial counts, concurrency)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value
