"""Shared pytest set-up. Fixtures live in ``tests/plugins/`` (one module per subsystem)."""

pytest_plugins = [
    "tests.plugins.simulator",
    "tests.plugins.kube",
    "tests.plugins.helm",
]
