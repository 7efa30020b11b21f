"""How the sparse sweep indexes spread a customer's rows over a few partitions (no hot
key): kept apart from the loyalty rules so the storage adapter can name a shard without
loading them."""

from __future__ import annotations

import hashlib

INDEX_SHARDS = 4
# The points lots' partitions (``LOTS#<shard>`` in the activity table's ``gsi1``): every
# order writes there, in time order, so more of them than the customers' sweep indexes
# have (written once per customer change): 16 partitions take 16 times one partition's
# write rate, as the ledger's ``sending`` index does.
LOT_SHARDS = 16

__all__ = ["INDEX_SHARDS", "LOT_SHARDS", "shard_of"]


def shard_of(customer_id: str, shards: int = INDEX_SHARDS) -> str:
    """The shard of ``customer_id``'s rows in a sweep index of ``shards`` partitions."""
    return str(int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % shards)
