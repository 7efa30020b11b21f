"""Fixtures for the delivery unit tests."""

from __future__ import annotations

import pytest

from kizuna.runtime.config import LoyaltyConfig


@pytest.fixture
def loyalty() -> LoyaltyConfig:
    return LoyaltyConfig()
