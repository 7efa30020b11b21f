"""pytest fixtures that give tests the local runtime.

In ``tests/conftest.py``::

    pytest_plugins = ["kizuna_tools.local.testing"]

then a test asks for ``kizuna_cloud`` (the real app, ingest and all) or uses
``local_cloud_factory`` for a template of its own::

    def test_x(local_cloud_factory):
        cloud = local_cloud_factory(template, project_root=tmp_path)
        cloud.put_events([...]); cloud.drain()

Outside pytest, :func:`local_cloud_from_template` is the same thing as a context manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.local.app import default_project_root, kizuna_template
from kizuna_tools.local.cloud import DEFAULT_START, LocalCloud

CloudFactory = Callable[..., LocalCloud]


@contextmanager
def local_cloud_from_template(
    template: Mapping[str, Any],
    *,
    project_root: Path | None = None,
    start: datetime = DEFAULT_START,
    **options: Any,
) -> Iterator[LocalCloud]:
    """A started :class:`LocalCloud` for ``template``; closed on exit."""
    cloud = LocalCloud.from_template(
        template, project_root=project_root or default_project_root(), start=start, **options
    )
    with cloud:
        yield cloud


@pytest.fixture
def local_cloud_factory() -> Iterator[CloudFactory]:
    """Make a started cloud from a template; every one made is closed after the test."""
    made: list[LocalCloud] = []

    def make(
        template: Mapping[str, Any],
        *,
        project_root: Path | None = None,
        start: datetime = DEFAULT_START,
        **options: Any,
    ) -> LocalCloud:
        cloud = LocalCloud.from_template(
            template, project_root=project_root or default_project_root(), start=start, **options
        )
        made.append(cloud)
        return cloud.start()

    yield make
    for cloud in reversed(made):
        cloud.close()


@pytest.fixture(scope="session")
def kizuna_template_json() -> dict[str, Any]:
    """The synthesized Kizuna stack (one synthesis per test session)."""
    return kizuna_template()


@pytest.fixture
def kizuna_cloud(
    kizuna_template_json: dict[str, Any], local_cloud_factory: CloudFactory
) -> LocalCloud:
    """The real Kizuna app on the local runtime, clock at ``DEFAULT_START``."""
    return local_cloud_factory(kizuna_template_json, project_root=default_project_root())
