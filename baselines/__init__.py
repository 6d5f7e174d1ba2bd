"""Describers behind one contract; build any of them with `create_describer(name, **args)`."""
from .registry import available_describers, create_describer, register_describer, resolve_describer

__all__ = ["available_describers", "create_describer", "register_describer", "resolve_describer"]
