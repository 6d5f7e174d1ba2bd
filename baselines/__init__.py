"""Describers behind one contract; build any of them with `create_describer(name, **args)`, or with
`build_describer(spec, args, Runtime(device, seed, progress))` to hand them the run's settings."""
from .registry import (Runtime, available_describers, build_describer, create_describer, recorded_args,
                       register_describer, resolve_describer)

__all__ = ["Runtime", "available_describers", "build_describer", "create_describer", "recorded_args",
           "register_describer", "resolve_describer"]
