"""Typed errors that name the path and the problem."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle is missing, tampered with, or not something the runtime can run."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
