"""The synthesized template passes cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

pytestmark = pytest.mark.infra

REGIONS = ["us-east-1", "ap-northeast-1"]
IGNORED = [
    # W3005 "dependency already enforced by a GetAtt": CDK adds DependsOn on a function's
    # role (and its DefaultPolicy) whenever the role is passed in explicitly; redundant but
    # harmless, and not ours to remove.
    "W3005",
]


def test_template_passes_cfn_lint(template_json: dict[str, Any], tmp_path: Path) -> None:
    # Given the synthesized template on disk
    path = tmp_path / "Kizuna.template.json"
    path.write_text(json.dumps(template_json, indent=1))

    # When linted for the regions Kizuna targets
    matches = lint_file(path, config=ManualArgs(regions=REGIONS, ignore_checks=IGNORED))

    # Then there is nothing to report
    assert [str(m) for m in matches] == []
