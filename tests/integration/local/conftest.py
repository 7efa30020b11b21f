"""The local runtime's own integration tests: a hand-written template and project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.local import LocalCloud
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import probe_template, write_project


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    return write_project(tmp_path)


@pytest.fixture
def template() -> dict[str, Any]:
    return probe_template()


@pytest.fixture
def cloud(
    local_cloud_factory: CloudFactory,
    template: dict[str, Any],
    project_root: Path,
) -> LocalCloud:
    return local_cloud_factory(template, project_root=project_root)
