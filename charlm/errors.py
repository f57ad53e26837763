"""Typed errors that name the path and the problem."""

from __future__ import annotations


class PathError(Exception):
    """A file or folder that cannot be used: `path` (a str) and `problem`; the message is one line, "PATH: PROBLEM"."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BundleError(PathError):
    """A bundle is missing, tampered with, or not something the runtime can run."""
