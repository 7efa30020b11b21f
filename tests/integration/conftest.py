"""The real Kizuna app on the local runtime, as the demo configures it (every channel on).

A module that needs another cloud (a hand-written template, another start) defines its own
``cloud`` fixture, which takes precedence over this one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna_tools.demo import DEMO_CONTEXT, load_catalog, prepare_channels
from kizuna_tools.local.app import kizuna_template
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.testing import CloudFactory
from kizuna_tools.simulation import Shop

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # Monday 09:00 in Tokyo
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}

DemoCloud = Callable[..., LocalCloud]


@pytest.fixture(scope="session")
def demo_template() -> dict[str, Any]:
    """The Kizuna stack synthesized with the demo's context (one synthesis per session)."""
    return kizuna_template(DEMO_CONTEXT)


@pytest.fixture
def demo_cloud(demo_template: dict[str, Any], local_cloud_factory: CloudFactory) -> DemoCloud:
    """Start the demo app at ``start`` (options as ``LocalCloud.from_template``; handlers
    log warnings and errors only unless told otherwise), channels prepared; closed after the
    test."""

    def make(start: datetime, **options: Any) -> LocalCloud:
        options.setdefault("environment_overrides", QUIET)
        c = local_cloud_factory(demo_template, start=start, **options)
        prepare_channels(c)
        return c

    return make


@pytest.fixture
def cloud(demo_cloud: DemoCloud) -> LocalCloud:
    """The demo app at :data:`START`."""
    return demo_cloud(START)


@pytest.fixture
def shop_cloud(demo_cloud: DemoCloud) -> Callable[..., LocalCloud]:
    """The demo app after ``shop``'s days: catalogue loaded, each day's events put on the bus
    and drained, the clock at the end of the last day."""

    def run(shop: Shop, **options: Any) -> LocalCloud:
        c = demo_cloud(shop.start, **options)
        load_catalog(c)
        for day, entries in shop.days_of_events():
            c.put_events(entries)
            c.drain()
            c.advance_to(shop.start + timedelta(days=day + 1))
        return c

    return run
