"""Argument parsers shared by the commands: each rejects a bad value with one clear line."""
from __future__ import annotations

import argparse


def positive_int(name: str):
    """argparse type: an integer ≥ 1."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, not {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, not {value}")
        return value
    return parse
