"""Behaviour-data generators, one per benchmark, behind ``python -m macflow.datagen <benchmark> ...``.

One module per benchmark makes its behaviour data from code and a seed (``mpe``: scripted simple_spread policies;
``mamujoco``: ARS and CPG behaviours), using the simulators in :mod:`macflow.envs`. The command line registers
``GENERATORS[name] = (add_arguments(parser), run(args))`` in ``__main__``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

GENERATORS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def register(name: str, add_arguments, run) -> None:
    GENERATORS[name] = (add_arguments, run)
