"""Hugging Face `evaluate` modules: `evaluate.load("<path to one of these files>")`.

Thin wrappers over `eval.metrics` (imports are absolute because `evaluate` copies the file into its own
cache before importing it). Kept apart from the metric code so that importing `eval.metrics` does not
import `evaluate` and `datasets`.
"""
