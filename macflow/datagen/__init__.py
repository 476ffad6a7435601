"""Behaviour-data generators, one per benchmark, behind ``python -m macflow.datagen <benchmark> ...``.

A generator registers ``GENERATORS[name] = (add_arguments(parser), run(args))``; only MaMuJoCo is implemented
(MPE's generator lives in ``macflow.datamodules.mpe`` and could register here)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

GENERATORS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def register(name: str, add_arguments, run) -> None:
    GENERATORS[name] = (add_arguments, run)
