"""Which channels a stack sends on: email, SMS, direct mail and cards always; push with an
End User Messaging application, LINE with a channel token, webhooks with the configuration's
endpoints. A message whose channels are none of these is suppressed, ``no_channel``
(``channel_not_configured`` for each): synthesis warns of a program's send step like that
(``kizuna_infra.programs.undeployed_sends``), and the API, the console and
``kizuna campaigns apply`` refuse a campaign like that (the stack's list: the API function's
``DEPLOYED_CHANNELS``, the stack output ``DeployedChannels``); the console's campaign form
offers only the deployed channels (:func:`split_deployed`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final

from kizuna.events.inbound import Channel

ALWAYS_DEPLOYED_CHANNELS: Final = frozenset({"email", "sms", "dm", "card"})


def deployed_channels(*, push: bool, line: bool, webhook: bool) -> frozenset[str]:
    """The channels a stack's send function has (as the wiring builds them)."""
    optional = {"push": push, "line": line, "webhook": webhook}
    return ALWAYS_DEPLOYED_CHANNELS | {name for name, on in optional.items() if on}


def channels_text(channels: Collection[str]) -> str:
    """The list as the stack passes it on (an environment variable, an output): sorted,
    comma-separated."""
    return ",".join(sorted(channels))


def parse_channels(text: str) -> frozenset[str] | None:
    """:func:`channels_text` read back; None for an empty text (a stack from before the list:
    nothing is checked). Anything but known channel names, comma-separated, is refused."""
    if not text:
        return None
    names = text.split(",")
    known = {c.value for c in Channel}
    unknown = [n for n in names if n not in known]
    if unknown or len(set(names)) != len(names):
        raise ValueError("the deployed channels are channel names, comma-separated, once each")
    return frozenset(names)


def undeployed(channels: Collection[str], deployed: Collection[str]) -> str | None:
    """Why messages on ``channels`` cannot be sent by this stack (none of them is deployed),
    or None."""
    if set(channels) & set(deployed):
        return None
    return (
        f"none of its channels ({', '.join(channels)}) is deployed in this stack (it sends on "
        f"{', '.join(sorted(deployed))}): every message would be suppressed, no_channel"
    )


def split_deployed(
    channels: Iterable[str], deployed: Collection[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``channels`` in their order as (those the stack sends on, those it does not), as the
    console's campaign form offers them; all of them deployed when the stack's list is not
    known (None: a stack from before it)."""
    names = tuple(channels)
    if deployed is None:
        return names, ()
    return (
        tuple(c for c in names if c in deployed),
        tuple(c for c in names if c not in deployed),
    )
