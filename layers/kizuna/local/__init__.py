"""kizuna.local: the synthesized app on moto, in-process, with a virtual clock.

See :class:`LocalCloud`. Patches of moto internals are in :mod:`kizuna.local.patches`;
pytest fixtures in :mod:`kizuna.local.testing`.
"""

from kizuna.local.clock import VirtualClock
from kizuna.local.cloud import (
    DEFAULT_START,
    Delivery,
    FunctionError,
    LocalCloud,
    LocalCloudError,
    ServeHandle,
)
from kizuna.local.functions import FunctionSpec, Invocation, LambdaContext
from kizuna.local.provision import Ignored, QueuePump, ResourceInfo, Unsupported
from kizuna.local.template import ACCOUNT_ID, REGION, Template, TemplateError

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_START",
    "REGION",
    "Delivery",
    "FunctionError",
    "FunctionSpec",
    "Ignored",
    "Invocation",
    "LambdaContext",
    "LocalCloud",
    "LocalCloudError",
    "QueuePump",
    "ResourceInfo",
    "ServeHandle",
    "Template",
    "TemplateError",
    "Unsupported",
    "VirtualClock",
]
