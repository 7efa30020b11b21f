"""kizuna_tools.local: the synthesized app on moto, in-process, with a virtual clock.

    from kizuna_tools.local import LocalCloud
    from kizuna_tools.local.app import default_project_root, kizuna_template

    with LocalCloud.from_template(kizuna_template(), project_root=default_project_root(),
                                  start=datetime(2026, 1, 1, tzinfo=UTC)) as cloud:
        cloud.put_events([{"Source": "shop", "DetailType": "order.placed", "Detail": {...}}])
        cloud.drain()            # pumps, deliveries and executions until nothing moves
        cloud.advance(days=7)    # Wait states, retries, schedules and TTL, in time order
        cloud.summary()          # invocations, errors, DLQs, executions, outboxes, API calls

What runs, and how:

- Resources come from the CloudFormation template (``Ref``/``Fn::GetAtt``/``Fn::Join``/
  ``Fn::Sub``... resolved locally) and are created through boto3 on moto. Each resource is
  created, listed in ``cloud.ignored`` (IAM, log groups, layers, policies: nothing to run)
  or in ``cloud.unsupported`` with the reason. Physical names are ``<stack>-<LogicalId>``
  unless the template names the resource.
- Functions are the template's ``AWS::Lambda::Function`` resources with CloudFormation
  metadata ``{"kizuna:function": "<name>"}``: ``functions/<name>/handler.py`` runs
  in-process with the function's environment, one invocation at a time. Every
  ``lru_cache`` in ``kizuna.*`` is cleared when a cloud starts and closes (a cold start).
- SQS event source mappings are pumped by ``drain()`` as Lambda polls (batch size, partial
  batch responses, receive counts, redrive to the DLQ). EventBridge delivers to SQS, Lambda
  (async, with Lambda's retries and DLQ/on-failure destination), Step Functions and SNS.
- Time is virtual: handlers read it from ``kizuna.runtime.clock.get_clock()``; Wait states and
  Retry intervals park their thread until ``advance()`` reaches them.
- Channels: email (moto SES, v1 and v2; the SESv2 request with its headers is kept), SMS
  (moto SNS, and a fake for ``pinpoint-sms-voice-v2``), push (a fake for ``pinpoint``
  ``SendMessages``), LINE (an HTTP recorder), webhook (the configured endpoints' receiver,
  :mod:`kizuna_tools.local.webhooks`): ``cloud.outbox(channel)``. With
  ``engagement=EngagementModel(...)``, simulated recipients answer the emails with SES events
  (delivery, open, click, bounce, complaint) through the feedback function
  (:mod:`kizuna_tools.local.engagement`).
- HTTP: calls to ``https://api.line.me`` (LINE's Messaging API), to the configuration's
  webhook endpoints (``urllib`` only) and to the template's
  Lambda function URLs (``https://<id>.lambda-url.us-east-1.on.aws/``) are answered
  in-process when made with ``urllib.request`` (recommended: no extra dependency in the
  Lambda layer) or ``requests``. Other HTTP clients (httpx, aiohttp) are not intercepted.
- ``cloud.api_calls`` counts every boto3 call the app makes (handlers, Step Functions
  service tasks, producers via ``cloud.put_events``); the runtime's own calls (polling,
  provisioning) are in ``cloud.runtime_api_calls``.

moto's internals are patched only in :mod:`kizuna_tools.local.patches` (one test each) and,
for the template's bus policies (AWS refuses a denied PutEvents entry; moto enforces no
policy), in :mod:`kizuna_tools.local.bus_policy`; pytest fixtures are in
:mod:`kizuna_tools.local.testing`.
"""

from kizuna_tools.local.cloud import (
    DEFAULT_START,
    Delivery,
    FunctionError,
    LocalCloud,
    LocalCloudError,
)
from kizuna_tools.local.functions import FunctionSpec, Invocation, LambdaContext
from kizuna_tools.local.gateway import HttpApi, HttpResponse, Route
from kizuna_tools.local.provision import Ignored, QueuePump, ResourceInfo, Unsupported
from kizuna_tools.local.server import ServeHandle
from kizuna_tools.local.template import ACCOUNT_ID, REGION, Template, TemplateError
from kizuna_tools.local.virtual_clock import VirtualClock

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_START",
    "REGION",
    "Delivery",
    "FunctionError",
    "FunctionSpec",
    "HttpApi",
    "HttpResponse",
    "Ignored",
    "Invocation",
    "LambdaContext",
    "LocalCloud",
    "LocalCloudError",
    "QueuePump",
    "ResourceInfo",
    "Route",
    "ServeHandle",
    "Template",
    "TemplateError",
    "Unsupported",
    "VirtualClock",
]
