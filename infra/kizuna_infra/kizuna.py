"""``Kizuna``: the whole system as one construct, to embed in any CDK app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aws_cdk import Annotations, RemovalPolicy, TimeZone
from constructs import Construct

from kizuna.delivery.deployed import deployed_channels
from kizuna.events.custom import vocabulary
from kizuna.runtime.config import KizunaConfig, encode_config
from kizuna_infra import names
from kizuna_infra.api import Api
from kizuna_infra.bus import EventBus
from kizuna_infra.campaigns import Campaigns
from kizuna_infra.data import DataTables
from kizuna_infra.delivery import Delivery
from kizuna_infra.functions import SharedProps, Wiring
from kizuna_infra.ingest import Ingest
from kizuna_infra.layers import Layers
from kizuna_infra.limits import check_program_capacity
from kizuna_infra.monitoring import Monitoring, monitored
from kizuna_infra.nag import acknowledge_findings
from kizuna_infra.programs import Programs, undeployed_sends
from kizuna_infra.scoring import Scoring


class Kizuna(Construct):
    """Bus, tables, layers, ingest, programs (evaluate, journeys, sweeps), delivery, scoring,
    campaigns, and the HTTP API with its console.

    Keyword arguments:
        bus_name: name of the EventBridge bus producers put events on.
        config: Kizuna configuration (``kizuna.runtime.config.KizunaConfig`` as a dict), validated
            at synth and passed to the functions as the ``KIZUNA_CONFIG`` JSON string; its
            ``contact.default_time_zone`` is the time zone of the daily schedules.
        removal_policy: what happens to the tables and the signing secret when the stack is
            deleted (RETAIN).
        tracing: turn on X-Ray active tracing for the functions (off: it costs cold start).
        source_root: the directory holding ``functions/`` and ``layers/`` (this repository).
        content_dir: the folder holding the shop's ``programs/``, ``templates/`` and
            ``segments/`` (``source_root`` by default), e.g. the output of
            ``kizuna migrate pinpoint``.
        programs_dir: the program YAML (``<content_dir>/programs``); validated at synth.
        templates_dir: the message templates (``<content_dir>/templates``).
        segments_dir: the named segments (``<content_dir>/segments``, optional); validated at
            synth with the programs (the attributes and events ``config`` declares may be named).
        email_from, ses_identity, push_application_id, line_token_secret_arn,
        line_token_parameter, sms_sender_id: channel settings, see
            :class:`~kizuna_infra.delivery.Delivery`.
        web_acl_arn: a CLOUDFRONT-scope WAF WebACL made in us-east-1 for the console's
            distribution; without it one is created here, which needs the stack in us-east-1
            (see :mod:`kizuna_infra.api`).
        advanced_security: Cognito threat protection on the console's user pool (billed).
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
        content_dir: Path | None = None,
        programs_dir: Path | None = None,
        templates_dir: Path | None = None,
        segments_dir: Path | None = None,
        email_from: str = names.DEFAULT_EMAIL_FROM,
        ses_identity: str | None = None,
        push_application_id: str = "",
        line_token_secret_arn: str = "",
        line_token_parameter: str = "",
        line_channel_secret_arn: str = "",
        line_channel_secret_parameter: str = "",
        sms_sender_id: str = "",
        web_acl_arn: str | None = None,
        advanced_security: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        # Validated here, so a wrong setting fails synthesis instead of every cold start.
        self.config = KizunaConfig.model_validate(dict(config or {}))
        # what the functions get in KIZUNA_CONFIG: compressed past 1 KB (a function's whole
        # environment is at most 4 KB; synthesis fails past it, see kizuna_infra.limits)
        # (only what differs from the defaults: the functions read the same configuration)
        self.config_json = encode_config(
            json.dumps(
                self.config.model_dump(mode="json", exclude_defaults=True),
                sort_keys=True,
                separators=(",", ":"),
            )
        )
        # Daily jobs run at night in the shop's time zone (ZoneInfo rejects unknown names).
        time_zone = ZoneInfo(self.config.contact.default_time_zone).key
        schedule_time_zone = TimeZone.of(time_zone)

        self.tables = DataTables(self, names.DATA_CONSTRUCT_ID, removal_policy=removal_policy)
        self.bus = EventBus(
            self, names.BUS_CONSTRUCT_ID, bus_name=bus_name, vocab=vocabulary(self.config)
        )
        self.layers = Layers(self, names.LAYERS_CONSTRUCT_ID, source_root=source_root)
        shared = SharedProps(layers=self.layers.all, source_root=source_root, tracing=tracing)
        wiring = Wiring(self.bus.bus, self.tables, shared, self.config_json)
        self.ingest = Ingest(
            self,
            names.INGEST_CONSTRUCT_ID,
            wiring=wiring,
        )
        content_dir = content_dir or source_root
        programs_dir = programs_dir or content_dir / names.PROGRAMS_DIR
        templates_dir = templates_dir or content_dir / names.TEMPLATES_DIR
        segments_dir = segments_dir or content_dir / names.SEGMENTS_DIR
        # Delivery first: every journey's Send step invokes its send function.
        self.delivery = Delivery(
            self,
            names.DELIVERY_CONSTRUCT_ID,
            wiring=wiring,
            programs_dir=programs_dir,
            templates_dir=templates_dir,
            segments_dir=segments_dir,
            email_from=email_from,
            ses_identity=ses_identity,
            push_application_id=push_application_id,
            line_token_secret_arn=line_token_secret_arn,
            line_token_parameter=line_token_parameter,
            line_channel_secret_arn=line_channel_secret_arn,
            line_channel_secret_parameter=line_channel_secret_parameter,
            sms_sender_id=sms_sender_id,
            removal_policy=removal_policy,
            schedule_time_zone=schedule_time_zone,
        )
        self.programs = Programs(
            self,
            names.PROGRAMS_CONSTRUCT_ID,
            wiring=wiring,
            send_function=self.delivery.send.function,
            programs_dir=programs_dir,
            templates_dir=templates_dir,
            segments_dir=segments_dir,
            schedule_time_zone=schedule_time_zone,
        )
        # an erasure schedules its sweep with the journey timers (kizuna.domain.privacy)
        self.programs.add_erasure_sweeps(
            self.ingest.function, self.ingest.queue, self.ingest.dead_letter_queue
        )
        # one state machine per program: past what one template holds, fail here, clearly
        check_program_capacity(len(self.programs.programs))
        self.deployed_channels = deployed = deployed_channels(
            push=bool(push_application_id),
            line=bool(line_token_secret_arn or line_token_parameter),
            webhook=bool(self.config.webhooks),
        )
        for problem in undeployed_sends(self.programs.programs, deployed):
            Annotations.of(self.programs).add_warning_v2("kizuna:channel-not-deployed", problem)
        self.scoring = Scoring(
            self,
            names.SCORING_CONSTRUCT_ID,
            wiring=replace(wiring, shared={**shared, "layers": self.layers.scoring}),
            scan_segments=self.config.scoring.scan_segments,
            schedule_time_zone=schedule_time_zone,
        )
        # One generic state machine runs every campaign occurrence; the CLI schedules them.
        self.campaigns = Campaigns(
            self,
            names.CAMPAIGNS_CONSTRUCT_ID,
            wiring=wiring,
            delivery=self.delivery,
            templates_dir=templates_dir,
            segments_dir=segments_dir,
        )

        # The HTTP API and console: reads everything, writes through the same services.
        self.api = Api(
            self,
            names.API_CONSTRUCT_ID,
            wiring=wiring,
            delivery=self.delivery,
            campaigns=self.campaigns,
            deployed_channels=deployed,
            data_dirs={
                names.PROGRAMS_DIR: programs_dir,
                names.TEMPLATES_DIR: templates_dir,
                names.SEGMENTS_DIR: segments_dir,
            },
            web_acl_arn=web_acl_arn,
            removal_policy=removal_policy,
            advanced_security=advanced_security,
        )

        # Derived events (source "kizuna") only from the functions that derive them (never
        # the API's: what it puts on the bus comes from people and machines).
        self.bus.allow_derived_events_only_from(
            [
                self.ingest.role,
                self.programs.evaluate.role,
                self.programs.sweep.role,
                self.scoring.score.role,
                self.campaigns.campaign.role,
            ]
        )
        # Kizuna's inbound facts (sources "kizuna.*": unsubscribes, LINE follows, bounces,
        # invalid addresses) only from the functions that report them
        self.bus.allow_inbound_facts_only_from(
            [
                self.delivery.send.role,
                self.delivery.feedback.role,
                self.delivery.unsubscribe.role,
                self.campaigns.campaign.role,
                *([self.delivery.line_webhook.role] if self.delivery.line_webhook else []),
            ]
        )

        queues, functions, machines = monitored(self)
        self.monitoring = Monitoring(
            self,
            names.MONITORING_CONSTRUCT_ID,
            dead_letter_queues=queues,
            functions=functions,
            state_machines=machines,
        )

        acknowledge_findings(self)
