"""What the API's routes work with, built once per container by
:func:`kizuna.runtime.wiring.api_app` (tests build it on moto or with fakes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kizuna.adapters.audit import AuditLog
    from kizuna.adapters.campaigns import CampaignStore
    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.scheduler import CampaignSchedules
    from kizuna.api.auth import TokenVerifier
    from kizuna.ports import ExecutionStatuses, ReportObjects, ShopEvents
    from kizuna.runtime.config import KizunaConfig
    from kizuna.services.cards import CardService
    from kizuna.services.contracts import TransactionalRequest, TransactionalResponse


class SignIn(Protocol):
    """Password sign-in for the console (Cognito ``InitiateAuth``, USER_PASSWORD_AUTH):
    :class:`kizuna.adapters.cognito.CognitoSignIn` on AWS and locally."""

    def id_token(self, username: str, password: str) -> str | None: ...


class TransactionalSender(Protocol):
    """The send function's transactional messages (:class:`kizuna.adapters.send_function.
    SendFunction`: a synchronous invoke); raises
    :class:`kizuna.services.contracts.SendUnavailable` when it does not answer."""

    def transactional(self, request: TransactionalRequest) -> TransactionalResponse: ...


@dataclass
class ApiDeps:
    """Adapters and configuration. Route families add what they need here (one field each,
    built in ``wiring.api_app``); keep boto3 out: these are adapters and services."""

    config: KizunaConfig
    store: DynamoStore  # customers + activity tables
    audit: AuditLog
    verifier: TokenVerifier
    sign_in: SignIn
    now: Callable[[], datetime]
    programs_dir: Path | None = None
    templates_dir: Path | None = None
    segments_dir: Path | None = None
    # the analytics bucket's published reports (reports/*.json); None: no bucket configured
    reports: ReportObjects | None = None
    campaigns: CampaignStore | None = None  # the campaigns table
    campaign_schedules: CampaignSchedules | None = None  # their Scheduler schedules
    # the campaign state machine's executions: an occurrence whose execution ended unfinished
    campaign_executions: ExecutionStatuses | None = None
    # secure cookies (HTTPS); the local server on 127.0.0.1 runs over HTTP
    secure_cookies: bool = True
    # the shop's events onto the bus (POST /machine/events); None: not configured (503)
    events: ShopEvents | None = None
    # transactional messages through the send function (POST /machine/messages); None: 503
    messages: TransactionalSender | None = None
    # cards for the shop's site (/cards, /machine/cards/tokens); None: not configured (503)
    cards: CardService | None = None
    # the channels the stack sends on (a campaign on none of them is refused); None: unknown
    deployed_channels: frozenset[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
