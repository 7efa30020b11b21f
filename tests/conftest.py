"""Shared fixtures: the local runtime (``kizuna_cloud``, ``local_cloud_factory``); the order
the test files run in."""

from __future__ import annotations

import pytest

pytest_plugins = ["kizuna_tools.local.testing"]

# The longest test files, longest first. `make test` runs the suite in one worker per core,
# a file's tests in one worker, files handed out in collection order: starting these first
# keeps one worker from running the longest file alone at the end (minutes on 2 cores).
LONGEST_FIRST = (
    "tests/integration/test_cohort_journeys.py",
    "tests/integration/test_campaigns_local.py",
    "tests/integration/test_pinpoint_migration_local.py",
    "tests/integration/test_reports_demo.py",
    "tests/integration/test_journeys.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
