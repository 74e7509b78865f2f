"""Registers the ``image`` marker (until it is listed in pyproject.toml's pytest markers)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the container image with buildah (hack/image) and runs it"
    )
