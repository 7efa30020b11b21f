"""Campaigns: one-off, local-time and recurring sends to a segment, batch-native."""
