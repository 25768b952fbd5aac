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

# Fixtures that build real models with TensorFlow: a test that needs one is slow (TensorFlow's import alone
# takes seconds), so `pytest -m "not slow"` leaves it out.
MODEL_BUILDING_FIXTURES = frozenset(
    {"healthy_model", "keras3_models", "tf_keras_models", "healthy_config", "lambda_models", "custom_layer_model"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_BUILDING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def result_cache_of_the_session(tmp_path_factory) -> None:
    """gate's default result cache ($XDG_CACHE_HOME/gate) for the gate runs of session-wide fixtures: never the
    user's, nor another test session's (which may run another gate)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def result_cache_of_the_test(tmp_path_factory, monkeypatch) -> Path:
    """Each test starts with an empty default result cache, as gate's first run on a machine does."""
    cache_home = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    return cache_home / "gate"


@pytest.fixture
def github(monkeypatch):
    """A fake GitHub API (tests/fake_github.py) holding the repository octo/models, which gate talks to."""
    from fake_github import FakeGitHub

    with FakeGitHub("octo/models") as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
        monkeypatch.delenv("GH_TOKEN", raising=False)
        yield fake


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
