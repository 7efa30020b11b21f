"""Shared synthesis for the infra tests.

Synthesis is the slow part (~1-2 s through jsii), so the default ``KizunaStack`` is
synthesized once per test session and modules needing a variant synthesize their own once
(module-scoped fixtures). Asset bundling is always skipped: only templates are asserted here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The jsii runtime starts with the first aws_cdk import; Node 20 prints an EOL banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Until pyproject installs kizuna_infra, import it (and kizuna) from the checkout.
for _path in (ROOT / "infra", ROOT / "layers"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from infra_helpers import CONFIGURED_CONTEXT  # noqa: E402

from kizuna_infra.stack import KizunaStack  # noqa: E402

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}

AppFactory = Callable[..., cdk.App]


@pytest.fixture(scope="session")
def make_app(tmp_path_factory: pytest.TempPathFactory) -> AppFactory:
    """Build an App that skips bundling and writes its assembly under pytest's tmp dir."""

    def make(context: Mapping[str, Any] | None = None) -> cdk.App:
        return cdk.App(
            context={**SKIP_BUNDLING, **(context or {})},
            outdir=str(tmp_path_factory.mktemp("cdk.out")),
        )

    return make


@pytest.fixture(scope="session")
def stack(make_app: AppFactory) -> KizunaStack:
    return KizunaStack(make_app())


@pytest.fixture(scope="session")
def template(stack: KizunaStack) -> Template:
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return dict(template.to_json())


LogicalId = Callable[[Any], str]


@pytest.fixture(scope="session")
def logical_id() -> LogicalId:
    """The logical id of an L2 construct's CloudFormation resource."""

    def resolve(construct: Any) -> str:
        stack = cdk.Stack.of(construct)
        element = construct.node.default_child if construct.node.default_child else construct
        result: str = stack.resolve(stack.get_logical_id(element))
        return result

    return resolve


@pytest.fixture(scope="session")
def resources(template_json: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = template_json["Resources"]
    return result


@pytest.fixture(scope="session")
def configured_stack(make_app: AppFactory) -> KizunaStack:
    """A stack configured through context, every optional setting given."""
    return KizunaStack(make_app(CONFIGURED_CONTEXT))


@pytest.fixture(scope="session")
def configured(configured_stack: KizunaStack) -> Template:
    return Template.from_stack(configured_stack)
