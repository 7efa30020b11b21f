"""Kizuna's own items share the activity table with customers' partitions: every internal
partition key contains a character the customer id grammar forbids, so no customer id can
name, export or erase one."""

from __future__ import annotations

import pytest

from kizuna.adapters.dynamodb import IDEMPOTENCY_PK, INTERNAL_PARTITIONS
from kizuna.domain.privacy import ERASED_PREFIX, ERASURES_PK, erased_key
from kizuna.events.inbound import is_customer_id
from kizuna.programs.members import COHORT_PK
from kizuna.programs.winners import WINNER_PK


def test_every_internal_partition_is_registered() -> None:
    assert set(INTERNAL_PARTITIONS) == {
        COHORT_PK,
        ERASED_PREFIX,
        ERASURES_PK,
        IDEMPOTENCY_PK,
        WINNER_PK,
    }


@pytest.mark.parametrize("prefix", INTERNAL_PARTITIONS)
@pytest.mark.parametrize("tail", ["", "x", "second-purchase-coupon", "DAY", "c1"])
def test_no_internal_partition_key_can_be_a_customer_id(prefix: str, tail: str) -> None:
    # an internal partition is the prefix, or the prefix and a name (a cohort, a hash)
    assert "#" in prefix
    assert not is_customer_id(prefix + tail)


def test_an_erasure_marker_key_is_no_customer_id() -> None:
    assert not is_customer_id(erased_key("c1"))
    assert not is_customer_id(ERASURES_PK)
    # and the name the counters had before is a customer id: that is why they moved
    assert is_customer_id(ERASURES_PK.rstrip("#"))
