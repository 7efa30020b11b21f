"""Builds the real adapters once per Lambda container (the handlers' only factory)."""

from __future__ import annotations

from functools import lru_cache

import boto3

from kizuna.clock import CurrentClock
from kizuna.config import load_config
from kizuna.ingest_service import IngestService
from kizuna.integrations.bus import EventBridgePublisher
from kizuna.integrations.deadletter import SqsDeadLetters
from kizuna.settings import ingest_settings
from kizuna.store import DynamoStore


@lru_cache(maxsize=1)
def ingest_service() -> IngestService:
    s = ingest_settings()
    return IngestService(
        store=DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        publisher=EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
        dead_letters=SqsDeadLetters(boto3.client("sqs"), s.DEAD_LETTER_QUEUE_URL),
        cfg=load_config(s.KIZUNA_CONFIG),
        clock=CurrentClock(),
        max_receive_count=s.MAX_RECEIVE_COUNT,
    )
