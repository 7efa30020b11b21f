"""Name patterns shared by the configuration and the program and campaign files that refer
to what it declares, kept apart so a file's model does not load the whole configuration."""

from __future__ import annotations

WEBHOOK_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"  # a configured webhook endpoint

__all__ = ["WEBHOOK_NAME_PATTERN"]
