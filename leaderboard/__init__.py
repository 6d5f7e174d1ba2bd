"""The leaderboard: submissions (data), validation that recomputes every score, and rendering.

    from leaderboard import write_submission, validate_paths, render
"""
from .render import render
from .submission import SUBMISSIONS_ROOT, find_submissions, load_submission, submit, write_submission
from .validate import Problem, Report, validate_paths, validate_submission

__all__ = ["Problem", "Report", "SUBMISSIONS_ROOT", "find_submissions", "load_submission", "render", "submit",
           "validate_paths", "validate_submission", "write_submission"]
