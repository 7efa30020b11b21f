"""The real Kizuna app on the local runtime, as the demo configures it (every channel on).

A module that needs another cloud (a hand-written template, another start) defines its own
``cloud`` fixture, which takes precedence over this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna_tools import demo
from kizuna_tools.demo import DEMO_CONTEXT, load_catalog, prepare_channels
from kizuna_tools.local.app import SKIP_BUNDLING, kizuna_template
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.testing import CloudFactory
from kizuna_tools.simulation import Shop

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # Monday 09:00 in Tokyo
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}

DemoCloud = Callable[..., LocalCloud]
ProjectCloud = Callable[..., LocalCloud]
# every channel configured as the demo does (email, push, LINE)
DEMO_CHANNELS: dict[str, Any] = {
    "email_from": demo.EMAIL_FROM,
    "push_application_id": demo.PUSH_APP_ID,
    "line_token_parameter": demo.LINE_TOKEN_PARAMETER,
}


def project_template(
    project: Path,
    config: Mapping[str, Any] = demo.DEMO_CONFIG,
    context: Mapping[str, Any] = DEMO_CONTEXT,
    **options: Any,
) -> dict[str, Any]:
    """The Kizuna stack synthesized with ``config`` and a fixture project's programs and
    templates (``options``: more of the ``Kizuna`` construct's, the channels for one:
    :data:`DEMO_CHANNELS`). Synthesis takes seconds: call it from a module-scoped fixture."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from kizuna_infra import names
    from kizuna_infra.kizuna import Kizuna

    app = cdk.App(context={**SKIP_BUNDLING, **context})
    stack = cdk.Stack(app, names.STACK_ID)
    Kizuna(
        stack,
        names.KIZUNA_CONSTRUCT_ID,
        config=config,
        programs_dir=project / "programs",
        templates_dir=project / "templates",
        **options,
    )
    return dict(Template.from_stack(stack).to_json())


def project_environment(project: Path) -> dict[str, str]:
    """The functions' environment for a fixture project: they read its programs and templates
    (on Lambda these are bundled next to the handlers) and log warnings and errors only."""
    return {
        **demo.QUIET,
        "PROGRAMS_DIR": str(project / "programs"),
        "TEMPLATES_DIR": str(project / "templates"),
    }


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
def project_cloud(local_cloud_factory: CloudFactory) -> ProjectCloud:
    """Start a fixture project's stack (:func:`project_template`) at ``start`` (default
    :data:`START`; options as ``LocalCloud.from_template``), its functions reading the
    project's programs and templates (:func:`project_environment`), channels prepared;
    closed after the test."""

    def make(
        template: dict[str, Any], project: Path, start: datetime = START, **options: Any
    ) -> LocalCloud:
        c = local_cloud_factory(
            template, start=start, environment_overrides=project_environment(project), **options
        )
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
