"""What the state machines send Kizuna's functions, and what they answer: plain pydantic
models, so a handler parses its request without loading the service behind it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

Status = Literal["sent", "suppressed", "deferred", "failed", "exit", "duplicate"]


class SendRequest(BaseModel):
    """One customer's message of a journey step (a cohort's send asks for many)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["send"] = "send"
    program: str
    step: str
    customer_id: str
    execution: str  # the entry: the ledger's key
    entered_at: datetime
    cohort: str | None = None
    run: str | None = None  # the execution that carries the customer
    # What the entry's trigger said (``customer.rank_changed``: its ``to_rank``...): the
    # message of *this* entry, not of the customer's latest state (templates: ``trigger``).
    trigger: dict[str, Any] | None = None
    # The root group's first step of a program that starts with a wait until a local time:
    # that ``HH:MM`` on the local date of ``local_date_at`` (the cohort's instant, fixed at
    # entry in the zone the customer had then) in the customer's zone now. A customer who
    # moved west meanwhile (Tokyo to London) is deferred to it (docs/PROGRAMS.md).
    not_before_local: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    local_date_at: datetime | None = None


class ChainedStep(BaseModel):
    """A step a cohort's task runs right after the one it names, over the group that goes
    on (the compiler fuses a send and the branch, split or local-time wait after it into
    one task, and a branch or split and the step it keeps)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["send", "check", "split", "local_time"]
    step: str


class GroupRequest(BaseModel):
    """What a cohort execution asks of the send and journey functions: one step over one
    group of the cohort's members (and the step fused after it, ``then``). No customer id:
    the members are in DynamoDB."""

    model_config = ConfigDict(extra="forbid")

    # removed: __dispatch's Default, a group at a step the program no longer has
    action: Literal["send", "check", "split", "local_time", "failed", "removed"]
    program: str
    cohort: str
    group: str
    run: str
    step: str
    after_seconds: int = 0
    local_time: str | None = None
    then: Annotated[list[ChainedStep], Field(max_length=1)] = []
    # an at_once program's entry segment, invoked by evaluate: the last step hands the
    # group off (kizuna.programs.compiler.entry_segment)
    entry: bool = False


class SendResponse(BaseModel):
    status: Status
    until: str | None = None
    channel: str | None = None
    reason: str | None = None


# --- campaigns: what the campaign state machine sends the campaign function --------------
class _CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: str
    occurrence: str


class PrepareRequest(BaseModel):
    """From EventBridge Scheduler, through the state machine's input."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["prepare"] = "prepare"
    campaign_id: str
    scheduled_time: datetime
    # the execution running Prepare ($$.Execution.Id): its own retry runs the occurrence,
    # another execution (a duplicated Scheduler delivery) does not
    execution: str | None = Field(default=None, min_length=1, max_length=2048)


class FreezeRequest(_CampaignRequest):
    action: Literal["freeze"] = "freeze"
    segment: int
    total_segments: int


class PlanRequest(_CampaignRequest):
    action: Literal["plan"] = "plan"
    after: dict[str, object] | None = None  # the previous plan's phase and pass


class Chunk(BaseModel):
    """Up to a few hundred recipients due at the same instant, in one manifest object.

    ``key`` is relative to the occurrence's prefix (``campaigns/<id>/<occurrence>/``):
    ``pass-<n>/<phase>/<due as YYYYMMDDTHHMMSSZ>/<name>.jsonl``. The plan sends only
    ``key`` and ``not_before`` (its answer stays small for a million recipients); phase,
    pass and due are read back from the key when absent."""

    model_config = ConfigDict(extra="forbid")

    key: str
    phase: Literal["test", "main", "deferred"]
    pass_number: int = 0
    due: datetime
    not_before: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_key(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "key" not in data or "phase" in data:
            return data
        try:
            pass_part, phase, due, _ = str(data["key"]).split("/", 3)
            at = datetime.strptime(due, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return data  # the model then says what is missing
        filled = {"phase": phase, "pass_number": pass_part.removeprefix("pass-"), "due": at}
        return {**filled, "not_before": at, **data}


class SendBatchRequest(_CampaignRequest):
    action: Literal["send_batch"] = "send_batch"
    chunk: Chunk


class WinnerRequest(_CampaignRequest):
    action: Literal["choose_winner"] = "choose_winner"


class CompleteRequest(_CampaignRequest):
    action: Literal["complete"] = "complete"


# The error name the campaign state machine retries (every 60 s) while a campaign is paused.
CAMPAIGN_PAUSED_ERROR = "CampaignPaused"


class CampaignRequest(
    RootModel[
        Annotated[
            PrepareRequest
            | FreezeRequest
            | PlanRequest
            | SendBatchRequest
            | WinnerRequest
            | CompleteRequest,
            Field(discriminator="action"),
        ]
    ]
):
    """Any request of the campaign function, by its ``action``."""


# --- transactional messages: what the API function asks of the send function ----------------
TransactionalStatus = Literal["sent", "suppressed", "failed", "conflict", "in_progress", "rejected"]


class TransactionalRequest(BaseModel):
    """ "Template T to customer C now", as the API validated it (:mod:`kizuna.api.routes.
    messages`). ``execution`` is ``tx:<hash>``, the hash of the caller and its idempotency
    key (one caller cannot collide with another's key); ``request_hash`` the hash of what
    was asked (the same key with another body is a conflict). ``data`` is for the template
    only: it is never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["transactional"] = "transactional"
    execution: str = Field(pattern=r"^tx:[0-9a-f]{32}$")
    request_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    caller: str = Field(min_length=1, max_length=2048)
    customer_id: str = Field(min_length=1, max_length=128)
    template: str = Field(min_length=1, max_length=128)
    channels: tuple[str, ...] = Field(min_length=1, max_length=4)
    data: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = None


class TransactionalResponse(BaseModel):
    """What became of a transactional message (the same answer for every retry of its key):
    ``sent`` on ``channel`` (``provider_message_id``), ``suppressed`` with ``reason`` and
    the channels passed over (``skipped``), ``failed`` (the provider refused, or the
    template did not render); ``conflict`` (the key was used with another body),
    ``in_progress`` (another request with the key is sending), ``rejected`` (nothing
    written: ``field`` and ``reason``)."""

    status: TransactionalStatus
    message_id: str | None = None  # the ledger's execution (tx:<hash>)
    channel: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    field: str | None = None
    skipped: list[dict[str, str]] = Field(default_factory=list)
    at: str | None = None
    # True when this answer repeats an earlier request's (not part of the API's body: the
    # API says it with the ``Idempotent-Replayed`` header)
    replayed: bool = False


class SendUnavailable(Exception):
    """The send function did not answer (an error, a timeout, throttling): the message may
    or may not be claimed; a retry with the same idempotency key is safe."""
