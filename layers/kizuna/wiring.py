"""Builds the real adapters once per Lambda container (the handlers' only factory)."""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import boto3

from kizuna.clock import CurrentClock
from kizuna.config import load_config
from kizuna.ingest_service import IngestService
from kizuna.integrations.bus import EventBridgePublisher
from kizuna.integrations.deadletter import SqsDeadLetters
from kizuna.integrations.stepfunctions import StepFunctionsStarter
from kizuna.programs.catalog import load_deployed_programs, resolve_dir
from kizuna.programs.evaluate import Evaluator
from kizuna.programs.evaluate_service import EvaluateService
from kizuna.programs.journey_service import JourneyService
from kizuna.programs.model import Program
from kizuna.settings import (
    evaluate_settings,
    ingest_settings,
    journey_settings,
    sweep_settings,
)
from kizuna.store import DynamoStore


def programs(explicit_dir: str | None) -> list[Program]:
    return cast(
        list[Program], list(load_deployed_programs(str(resolve_dir("programs", explicit_dir))))
    )


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


@lru_cache(maxsize=1)
def evaluate_service() -> EvaluateService:
    s = evaluate_settings()
    store = DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE)
    evaluator = Evaluator(
        programs(s.PROGRAMS_DIR),
        store,
        StepFunctionsStarter(boto3.client("stepfunctions"), s.JOURNEY_ARN_PREFIX),
        EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
        load_config(s.KIZUNA_CONFIG),
        CurrentClock(),
    )
    return EvaluateService(
        evaluator,
        SqsDeadLetters(boto3.client("sqs"), s.DEAD_LETTER_QUEUE_URL),
        s.MAX_RECEIVE_COUNT,
    )


@lru_cache(maxsize=1)
def journey_service() -> JourneyService:
    s = journey_settings()
    store = DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE)
    return JourneyService(
        programs(s.PROGRAMS_DIR), store, load_config(s.KIZUNA_CONFIG), CurrentClock()
    )


@lru_cache(maxsize=1)
def sweep_parts() -> tuple[DynamoStore, EventBridgePublisher]:
    s = sweep_settings()
    return (
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
    )
