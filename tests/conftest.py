"""Shared fixtures: the local runtime (``kizuna_cloud``, ``local_cloud_factory``)."""

pytest_plugins = ["kizuna_tools.local.testing"]
