"""Shared fixtures: the local runtime (``kizuna_cloud``, ``local_cloud_factory``); the order
the test files run in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kizuna_tools.local.patches import (
    patch_dynamodb_batch_keys,
    patch_dynamodb_key_filters,
    patch_dynamodb_request_rules,
    patch_put_events_size,
    patch_sqs_message_size,
)

pytest_plugins = ["kizuna_tools.local.testing"]

# The longest test files, longest first. `make test` runs the suite in one worker per core,
# a file's tests in one worker, files handed out in collection order (`--no-loadscope-reorder`:
# xdist would otherwise order files by their number of tests, and these have few): starting
# them first, on different workers, keeps one worker from running the longest file alone at
# the end (minutes on 2 cores).
LONGEST_FIRST = (  # measured with --durations (setup + calls), 2 cores
    "tests/integration/local/test_faults.py",  # ~250 s
    "tests/integration/test_cohort_journeys.py",  # ~220 s
    "tests/integration/test_campaigns_local.py",  # ~170 s
    "tests/integration/test_journeys.py",  # ~110 s
    "tests/browser/test_console_browser.py",  # ~70 s
    "tests/integration/test_pinpoint_migration_local.py",  # ~65 s
    "tests/integration/test_custom_vocabulary_local.py",  # ~60 s
    "tests/integration/test_reports_demo.py",  # ~45 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable


@pytest.fixture(scope="session", autouse=True)
def moto_refuses_what_dynamodb_refuses() -> Iterator[None]:
    """Every test on moto (not only the local runtime's) gets DynamoDB's refusal of a Query
    whose FilterExpression names a key attribute, of a BatchWriteItem naming one key twice
    or holding more than 25 requests, of an unused placeholder in a transaction, of a
    secondary-index key of the wrong type and of nesting deeper than 32 levels;
    EventBridge's refusal of a PutEvents request over 1 MB; and SQS's of a message over the
    queue's maximum or a SendMessageBatch over 1 MiB, attributes and UTF-8 bytes counted:
    moto accepts them all, AWS does not."""
    undos = [
        patch_dynamodb_key_filters(None),
        patch_dynamodb_batch_keys(None),
        patch_dynamodb_request_rules(None),
        patch_put_events_size(None),
        patch_sqs_message_size(None),
    ]
    yield
    for undo in reversed(undos):
        undo()
