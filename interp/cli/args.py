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


def in_range(bounds):
    """argparse type: an integer inside one of the shared ranges of :mod:`interp.ranges` (the dashboard's
    URL and widgets accept exactly the same values)."""
    def parse(text):
        try:
            return bounds.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err))
    return parse
