"""How the sparse sweep indexes spread a customer's rows over a few partitions (no hot
key): kept apart from the loyalty rules so the storage adapter can name a shard without
loading them."""

from __future__ import annotations

import hashlib

INDEX_SHARDS = 4

__all__ = ["INDEX_SHARDS", "shard_of"]


def shard_of(customer_id: str) -> str:
    """The shard of ``customer_id``'s rows in the sweep indexes."""
    return str(int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % INDEX_SHARDS)
