"""``Kizuna``: the whole system as one construct, to embed in any CDK app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from constructs import Construct

from kizuna_infra import names
from kizuna_infra.bus import EventBus
from kizuna_infra.data import DataTables
from kizuna_infra.ingest import Ingest
from kizuna_infra.layers import Layers
from kizuna_infra.nag import acknowledge_findings


class Kizuna(Construct):
    """Bus, tables, layers and the ingest pipeline (evaluate/journeys/delivery come later).

    Keyword arguments:
        bus_name: name of the EventBridge bus producers put events on.
        config: Kizuna configuration (``kizuna.config.KizunaConfig`` as a dict), passed to
            the functions as the ``KIZUNA_CONFIG`` JSON string.
        removal_policy: what happens to the tables when the stack is deleted (RETAIN).
        tracing: turn on X-Ray active tracing for the functions (off: it costs cold start).
        source_root: the directory holding ``functions/`` and ``layers/`` (this repository).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus_name: str = names.DEFAULT_BUS_NAME,
        config: Mapping[str, Any] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        tracing: bool = False,
        source_root: Path = names.PROJECT_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config_json = json.dumps(dict(config or {}), sort_keys=True, separators=(",", ":"))

        self.tables = DataTables(self, names.DATA_CONSTRUCT_ID, removal_policy=removal_policy)
        self.bus = EventBus(self, names.BUS_CONSTRUCT_ID, bus_name=bus_name)
        self.layers = Layers(self, names.LAYERS_CONSTRUCT_ID, source_root=source_root)
        self.ingest = Ingest(
            self,
            names.INGEST_CONSTRUCT_ID,
            bus=self.bus.bus,
            tables=self.tables,
            layers=self.layers.all,
            source_root=source_root,
            config_json=self.config_json,
            tracing=tracing,
        )

        acknowledge_findings(self)
