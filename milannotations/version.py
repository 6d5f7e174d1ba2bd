"""The package version, in a module of its own so the writer can stamp it without importing the package."""
__version__ = "0.1.0"
