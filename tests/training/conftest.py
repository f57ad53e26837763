"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest

from tests.conftest import synthetic_text


@pytest.fixture
def corpus(tmp_path):
    """A small corpus file, data/toy.txt: 50 synthetic texts, one a line."""
    p = tmp_path / "data" / "toy.txt"
    p.parent.mkdir()
    p.write_text(synthetic_text(50, seed=5), encoding="utf-8")
    return p
