"""Reliability drills: a fast subset by default, the long mode with `--long-drills`
(`python -m pytest tests/reliability --long-drills`) or `ALBUMTAGGER_LONG_DRILLS=1`."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long-drills",
        action="store_true",
        default=False,
        help="run the crash drills 200 times instead of the fast CI subset",
    )


def long_mode(config: pytest.Config) -> bool:
    return bool(config.getoption("--long-drills", default=False)) or os.environ.get(
        "ALBUMTAGGER_LONG_DRILLS", ""
    ) not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not long_mode(config):
        return
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def long_drills(pytestconfig: pytest.Config) -> bool:
    return long_mode(pytestconfig)
