"""Fixtures shared by the tests; the helpers they use live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from helpers import TEST_POLICIES, keras3_mlp  # noqa: E402 - after the environment TensorFlow reads

# The models the inspection tests share, built once per session.
pytest_plugins = ("inspection_models",)


@pytest.fixture(scope="session")
def healthy_model(tmp_path_factory) -> Path:
    """A model folder that passes the default policy; copy it, never change it."""
    return keras3_mlp(tmp_path_factory.mktemp("healthy") / "healthy")


@pytest.fixture
def workspace(tmp_path, healthy_model) -> Path:
    """A repository layout: policies/ with the test policies and models/ with one healthy model."""
    (tmp_path / "policies").mkdir()
    for name, text in TEST_POLICIES.items():
        (tmp_path / "policies" / f"{name}.toml").write_text(text)
    shutil.copytree(healthy_model, tmp_path / "models" / "healthy")
    return tmp_path
