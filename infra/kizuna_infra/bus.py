"""The EventBridge bus every producer and every Kizuna component talks through.

Two guards live here:

- **Only Kizuna puts Kizuna's events.** Derived events (source ``kizuna``) start journeys
  and send messages; a producer that could put them could send a "Champions" message to a
  customer who never qualified. The bus's resource policy denies ``events:PutEvents`` of an
  entry whose ``events:source`` is ``kizuna`` to every principal but the roles of the
  functions that derive events (:meth:`EventBus.allow_derived_events_only_from`). An
  explicit Deny in a resource policy applies to callers of the same account too, whatever
  their identity policies allow. Rules cannot match on the caller, so the evaluate function
  also re-checks every derived claim against the stored customer (kizuna.programs.claims).
- **Only Kizuna reports Kizuna's inbound facts.** The facts Kizuna's own functions report
  (source ``kizuna.<function>``: an unsubscribe from the hosted page, a LINE follow, a
  bounce) are kept as the proof of consent; a producer that could put them could write a
  consent change that reads as the customer's own click on the hosted page. The same kind
  of Deny keeps sources ``kizuna.*`` to those functions' roles
  (:meth:`EventBus.allow_inbound_facts_only_from`), and ingest refuses the hosted page's
  and the LINE webhook's ``detail.source`` words under any other source
  (kizuna.events.envelope.KIZUNA_DETAIL_SOURCES).
- **No direct identifiers in the archive.** The archive keeps, for replay, only the event
  types that carry none (:func:`archived_event_types`): never ``customer.upserted`` (email,
  phone, name, birth date), device tokens, LINE ids or a suppressed address's hash
  (``channel.suppressed``: unkeyed, so trying every phone number reverses it). Erasure
  cannot reach into an archive; what it keeps is pseudonymous (customer ids, orders,
  points, consent, behaviour)
  and expires after ``names.ARCHIVE_RETENTION_DAYS``, no later than the erasure marker
  (kizuna.domain.privacy.ERASED_MARKER_DAYS), so a replay never re-creates an erased
  customer. A shop's own event (``custom.events`` of the configuration) is archived unless
  one of its fields is declared personal or is named like a direct identifier.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from kizuna.domain.privacy import DIRECT_IDENTIFIER_EVENTS, DIRECT_IDENTIFIER_FIELDS
from kizuna.events import DERIVED_MODELS, INBOUND_MODELS
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.derived import CAMPAIGN_EVENT_MODELS
from kizuna.programs.pattern_rules import MAX_PATTERN_CHARS
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE
from kizuna_infra import names


def archived_event_types(vocab: Vocabulary = BUILTIN) -> list[str]:
    """Every event type of the bus contract that carries no direct identifier, the shop's
    declared events with no personal field included. An allow list: an event type nobody
    declared (a producer's own, a future one) is not archived."""
    known = [*INBOUND_MODELS, *DERIVED_MODELS, *CAMPAIGN_EVENT_MODELS]
    custom = [
        event.detail_type
        for event in vocab.events.values()
        if not any(f.personal or f.name in DIRECT_IDENTIFIER_FIELDS for f in event.fields)
    ]
    return sorted([*(t for t in known if t not in DIRECT_IDENTIFIER_EVENTS), *custom])


class EventBus(Construct):
    """A named custom bus, its archive of the events that carry no direct identifier, and
    (once the functions exist) the policy that keeps Kizuna's own source to Kizuna."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus_name: str = names.DEFAULT_BUS_NAME,
        archive_retention: Duration | None = None,
        vocab: Vocabulary = BUILTIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, names.BUS_ID, event_bus_name=bus_name)
        retention = archive_retention or Duration.days(names.ARCHIVE_RETENTION_DAYS)
        archived = archived_event_types(vocab)
        size = len(json.dumps({"detail-type": archived}, separators=(",", ":")))
        if size > MAX_PATTERN_CHARS:
            raise ValueError(
                f"the archive's event pattern would be {size} characters, over EventBridge's "
                f"{MAX_PATTERN_CHARS}: shorten or declare fewer custom.events"
            )
        self.archive = self.bus.archive(
            names.ARCHIVE_ID,
            description=f"Events on the {bus_name} bus without direct identifiers, for replay",
            event_pattern=events.EventPattern(detail_type=archived),
            retention=retention,
        )

    def allow_derived_events_only_from(self, roles: Sequence[iam.IRole]) -> None:
        """Deny PutEvents of source ``kizuna`` to every principal but ``roles``."""
        self._deny_source_but_to(
            names.BUS_POLICY_SID, {"StringEquals": {"events:source": KIZUNA_EVENT_SOURCE}}, roles
        )

    def allow_inbound_facts_only_from(self, roles: Sequence[iam.IRole]) -> None:
        """Deny PutEvents of sources ``kizuna.*`` to every principal but ``roles``."""
        pattern = f"{KIZUNA_EVENT_SOURCE}.*"
        self._deny_source_but_to(
            names.BUS_INBOUND_POLICY_SID, {"StringLike": {"events:source": pattern}}, roles
        )

    def _deny_source_but_to(
        self, sid: str, source: dict[str, dict[str, str]], roles: Sequence[iam.IRole]
    ) -> None:
        """One Deny statement of the bus policy: PutEvents of the ``source`` condition's
        entries, to every principal but ``roles`` (an explicit Deny: same-account callers too)."""
        if not roles:
            raise ValueError(f"{sid}: at least one role must be allowed to put these sources")
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={
                    **source,
                    "ArnNotEquals": {"aws:PrincipalArn": [r.role_arn for r in roles]},
                },
            )
        )

    @property
    def bus_name(self) -> str:
        return self.bus.event_bus_name

    @property
    def bus_arn(self) -> str:
        return self.bus.event_bus_arn
