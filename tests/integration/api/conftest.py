from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from tests.integration.api.harness import REGION, Api, build_api
from tests.moto_setup import fake_aws_env


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        yield build_api()
