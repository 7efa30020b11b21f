"""``LocalCloud``: the synthesized Kizuna app running on moto, in-process, on virtual time.

    with LocalCloud.from_template(template, project_root=root, start=start) as cloud:
        cloud.put_events([{"Source": "shop", "DetailType": "order.placed", "Detail": {...}}])
        cloud.drain()              # run everything due now, until nothing moves
        cloud.advance(days=7)      # move the clock: Wait states, schedules, TTL, in time order
        cloud.outbox("email")

One cloud at a time per process (moto's mock is process-wide).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import re
import threading
import time
import urllib.parse
import uuid
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import boto3

from kizuna.domain.schedule_expressions import Schedule, parse_schedule
from kizuna.runtime import clock as kizuna_clock
from kizuna.runtime import settings
from kizuna_tools.local import backends, executions
from kizuna_tools.local.bus_policy import enforce_bus_policies
from kizuna_tools.local.engagement import APP_SOURCE, EngagementModel, EngagementSimulator
from kizuna_tools.local.faults import FaultInjector, FaultPlan
from kizuna_tools.local.functions import (
    FunctionRunner,
    FunctionSpec,
    Invocation,
    current_function,
    reset_containers,
    unknown_function_error,
)
from kizuna_tools.local.gateway import Gateway, HttpApi, HttpResponse
from kizuna_tools.local.patches import apply_all, shared_session
from kizuna_tools.local.provision import (
    Ignored,
    Provisioned,
    Provisioner,
    QueuePump,
    ResourceInfo,
    Unsupported,
)
from kizuna_tools.local.schedules import (
    SFN_START_EXECUTION_TARGET,
    scheduler_dead_letter_attributes,
    start_execution_parameters,
)
from kizuna_tools.local.server import ServeHandle
from kizuna_tools.local.template import ACCOUNT_ID, REGION, Template
from kizuna_tools.local.virtual_clock import Timeline, VirtualClock
from kizuna_tools.local.watchdog import DEFAULT_STALL_TIMEOUT, Watchdog, exit_on_stall
from kizuna_tools.local.webhooks import WebhookReceiver, endpoints_of

LOG = logging.getLogger(__name__)

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = ("email", "sms", "push", "line", "webhook")
_INTERNAL_KEY = "kizuna-local-runtime"
Wake = Literal["one", "batch"]


@dataclass
class Delivery:
    """An asynchronous hand-off EventBridge or Scheduler makes to Lambda, SFN or SNS."""

    kind: str  # "lambda" | "states" | "sns"
    # a function, state machine or topic; or Scheduler's universal target for StartExecution
    # (kind "states"; the payload is the request)
    target_arn: str
    payload: str
    source_arn: str
    dead_letter_arn: str | None = None
    execution_id: str | None = None  # a Scheduler invocation's <aws.scheduler.execution-id>


@dataclass(order=True)
class _Parked:
    """A failed SQS message without a redrive policy: visible again after its timeout."""

    due: datetime
    message_id: str
    queue_url: str = field(compare=False)
    receipt_handle: str = field(compare=False)


def _with_overrides(configuration: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The message one address gets: a batch's per-address ``TitleOverride`` and
    ``BodyOverride`` (Pinpoint's AddressConfiguration) applied to every channel's part."""
    overrides = {
        key: spec[name]
        for key, name in (("Title", "TitleOverride"), ("Body", "BodyOverride"))
        if spec.get(name) is not None
    }
    if not overrides:
        return configuration
    return {
        part: {**value, **overrides} if isinstance(value, dict) else value
        for part, value in configuration.items()
    }


@dataclass
class FunctionError:
    function: str
    source: str
    error: dict[str, Any]
    at: datetime


def content_environment(content_dir: Path | None) -> dict[str, str]:
    """The functions' environment naming a content folder's ``programs/``, ``templates/`` and
    ``segments/`` (nothing without one)."""
    if content_dir is None:
        return {}
    root = Path(content_dir).resolve()
    return {
        settings.ENV_PROGRAMS_DIR: str(root / "programs"),
        settings.ENV_TEMPLATES_DIR: str(root / "templates"),
        settings.ENV_SEGMENTS_DIR: str(root / "segments"),
    }


class LocalCloudError(Exception):
    """The local runtime was used wrongly or could not finish what it was asked."""


def _iso(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@functools.lru_cache(maxsize=256)
def _jsonpath(path: str) -> Any:
    """A parsed JSONPath (jsonpath_ng builds a parser per parse: cache them)."""
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    return parse(path)


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def fill_input_template(template: str, values: Mapping[str, Any]) -> str:
    """EventBridge's InputTransformer substitution.

    In a JSON template a placeholder outside quotes becomes the value as JSON (a string
    keeps its quotes); inside a string literal it becomes the value's text. A template that
    is not JSON (plain text) gets each value's text.
    """
    is_json = template.strip().startswith(("{", "["))

    def as_text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    if not is_json:
        return _PLACEHOLDER.sub(
            lambda m: as_text(values[m.group(1)]) if m.group(1) in values else m.group(0),
            template,
        )
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(template):
        char = template[index]
        if in_string and char == "\\":
            out.append(template[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "<":
            match = _PLACEHOLDER.match(template, index)
            if match and match.group(1) in values:
                value = values[match.group(1)]
                out.append(json.dumps(as_text(value))[1:-1] if in_string else json.dumps(value))
                index = match.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _also(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    """One undo: ``first``, then ``then``."""

    def undo() -> None:
        try:
            first()
        finally:
            then()

    return undo


def _put_on_bus(
    bus_arn: str, source: str, detail_type: str, detail: str, resource: str, when: datetime
) -> None:
    """One event from a schedule or a scheduled rule onto a bus (moto's PutEvents)."""
    backends.backend("events").put_events(
        [
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": detail,
                "EventBusName": bus_arn,
                "Resources": [resource],
                "Time": when.timestamp(),
            }
        ]
    )


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def _parse_date(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class LocalCloud:
    """The app of one CloudFormation template, provisioned on moto and driven by a clock."""

    _active: LocalCloud | None = None

    def __init__(
        self,
        template: Template,
        *,
        project_root: Path,
        start: datetime = DEFAULT_START,
        ttl_sweep_interval: timedelta = timedelta(hours=1),
        execution_timeout: float = 60.0,
        environment_overrides: Mapping[str, str] | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        on_stall: Callable[[str], None] = exit_on_stall,
        faults: FaultPlan | None = None,
        content_dir: Path | None = None,
        engagement: EngagementModel | None = None,
    ) -> None:
        """``content_dir``: the folder holding the shop's ``programs/``, ``templates/`` and
        ``segments/`` when they are not the checkout's (what the stack was synthesized with,
        context ``kizuna:contentDir``): the functions read them there, as a deployed function
        reads the copies bundled next to its handler.

        ``environment_overrides`` apply to every function (e.g. quieter logging for a
        demo: ``{"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}``).

        ``stall_timeout``: while the runtime drives the app, if no invocation completes and
        the clock does not move for that many seconds (wall time), ``on_stall`` gets a report
        of every thread's stack and what the runtime waits for; by default it is written to
        stderr and the process exits with status 70 (:mod:`kizuna_tools.local.watchdog`).
        ``None`` turns the watchdog off.

        ``faults``: throttling, 5xx (before or after the call took effect), timeouts and
        duplicated deliveries injected into the app's calls (:mod:`kizuna_tools.local.faults`);
        what was injected is in ``summary()["faults"]``.

        ``engagement``: simulated recipients (:mod:`kizuna_tools.local.engagement`): SES
        delivery, open, click, bounce and complaint events for the emails sent, through the
        template's feedback rule and function, and the app's ``push.opened`` for the pushes
        sent, through the bus and ingest; what was emitted is in ``summary()["engagement"]``.
        ``None`` (the default): no SES or app events at all.
        """
        self.template = template
        self.project_root = Path(project_root)
        self.clock = VirtualClock(start)
        self.timeline = Timeline(self.clock, on_change=self._touch)
        overrides = {**content_environment(content_dir), **(environment_overrides or {})}
        self.runner = FunctionRunner(self.project_root, environment_overrides=overrides)
        self.ttl_sweep_interval = ttl_sweep_interval
        self.execution_timeout = execution_timeout

        self.api_calls: Counter[tuple[str, str]] = Counter()
        self.runtime_api_calls: Counter[tuple[str, str]] = Counter()
        # function name -> (service, operation) -> calls made while its handler ran
        self.calls_by_function: defaultdict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        self.invocations: Counter[str] = Counter()
        self.errors: list[FunctionError] = []
        self.delivery_errors: list[dict[str, Any]] = []
        self.provision_seconds = 0.0

        self._provisioned = Provisioned()
        self._mock: Any = None
        self._undo_patches: Callable[[], None] | None = None
        self._previous_clock: kizuna_clock.Clock | None = None
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._internal_signers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._interpreter_signers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.faults = FaultInjector(faults) if faults is not None else None
        self.engagement = (
            EngagementSimulator(
                engagement,
                self._emit_ses_event,
                self._rfm_segment,
                self._emit_app_event,
                self._browse,
            )
            if engagement is not None
            else None
        )
        self._duplicated: set[str] = set()  # SQS message ids already delivered again
        self._counter_lock = threading.Lock()
        self._drive_lock = threading.RLock()
        self._deliveries: deque[Delivery] = deque()
        self._parked: list[_Parked] = []
        self._activity = 0
        self._last_fired: dict[str, datetime] = {}
        self._first_seen: dict[str, datetime] = {}
        self._schedule_cache: dict[tuple[str, str, str, datetime], Schedule] = {}
        self._last_ttl_sweep = self.clock.now()
        self._push: list[dict[str, Any]] = []
        self._line: list[dict[str, Any]] = []
        # the shop's webhook endpoints, known once the template's functions are provisioned
        self.webhooks = WebhookReceiver({}, self._secret_value)
        self._line_retry_keys: dict[str, tuple[str, list[dict[str, str]]]] = {}
        self._sms_v2: list[dict[str, Any]] = []
        self._email_requests: dict[str, Any] = {}
        self._servers: list[ServeHandle] = []
        self._gateways: dict[str, Gateway] = {}
        self._closed = False
        self.watchdog: Watchdog | None = None
        if stall_timeout is not None:
            self.watchdog = Watchdog(
                stall_timeout, self._progress, self.describe_waits, on_stall=on_stall
            )

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_template(
        cls,
        template: Mapping[str, Any],
        *,
        project_root: Path,
        start: datetime = DEFAULT_START,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = "kizuna",
        **options: Any,
    ) -> LocalCloud:
        """A cloud for a synthesized template (the dict CDK writes to ``*.template.json``)."""
        return cls(
            Template(template, stack_name=stack_name, parameters=parameters),
            project_root=project_root,
            start=start,
            **options,
        )

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> LocalCloud:
        """Start moto, apply the patches, install the clock and provision the template."""
        from moto import mock_aws

        if LocalCloud._active is not None:
            raise LocalCloudError("another LocalCloud is running in this process; close it first")
        LocalCloud._active = self
        if self.watchdog is not None:
            self.watchdog.start()
        try:
            self._mock = mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    # patches.register_botocore_hooks installs a default session of its own
                    "core": {"reset_boto3_session": False},
                }
            )
            self._mock.start()
            self._undo_patches = apply_all(self)
            self._undo_patches = _also(enforce_bus_policies(self.template), self._undo_patches)
            self._previous_clock = kizuna_clock.get_clock()
            kizuna_clock.set_clock(self.clock)
            reset_containers()
            self._session = shared_session("runtime", _INTERNAL_KEY, REGION)
            provisioner = Provisioner(self.template, self._client, self.runner)
            self._provisioned = provisioner.run()
            self.provision_seconds = self._provisioned.seconds
            self.webhooks = WebhookReceiver(
                endpoints_of({n: f.environment for n, f in self._provisioned.functions.items()}),
                self._secret_value,
            )
            for item in self._provisioned.unsupported:
                LOG.info("not emulated locally: %s %s: %s", *item)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop everything started; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._phase("close"):
                self._close()
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()

    def _close(self) -> None:
        for server in self._servers:
            server.stop()
        try:
            if self._session is not None:
                self._stop_executions()
        finally:
            self.timeline.close()
            deadline = time.monotonic() + 5
            while executions.prune_finished() and time.monotonic() < deadline:
                if not executions.busy_threads(self.timeline) and time.monotonic() > deadline - 4:
                    break
                time.sleep(0.01)
            if self._undo_patches is not None:
                self._undo_patches()
            if self._previous_clock is not None:
                kizuna_clock.set_clock(self._previous_clock)
            reset_containers()
            if self._mock is not None:
                self._mock.stop()
            if LocalCloud._active is self:
                LocalCloud._active = None

    def _stop_executions(self) -> None:
        sfn = self._client("stepfunctions")
        for machine in sfn.list_state_machines().get("stateMachines", []):
            paginator = sfn.get_paginator("list_executions")
            for page in paginator.paginate(
                stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
            ):
                for execution in page.get("executions", []):
                    self._stop_execution(sfn, execution["executionArn"])

    @staticmethod
    def _stop_execution(sfn: Any, arn: str, attempts: int = 50) -> None:
        """Stop one execution. moto sets an execution's worker environment on the worker's
        own thread, after StartExecution returned: a stop that comes first fails inside moto
        (``'NoneType' object has no attribute 'set_stop'``), so it is retried for up to about
        2.5 s, until the worker has started."""
        for attempt in range(attempts):
            try:
                sfn.stop_execution(executionArn=arn, cause="kizuna_tools.local closed")
                return
            except Exception:  # moto's race surfaces as any error
                status = sfn.describe_execution(executionArn=arn)["status"]
                if status != "RUNNING":
                    return  # it ended meanwhile
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)

    # --- what was provisioned ------------------------------------------------------------
    @property
    def resources(self) -> dict[str, ResourceInfo]:
        """Logical id -> physical name, ARN and URL of every created resource."""
        return dict(self._provisioned.resources)

    @property
    def ignored(self) -> list[Ignored]:
        return list(self._provisioned.ignored)

    @property
    def unsupported(self) -> list[Unsupported]:
        return list(self._provisioned.unsupported)

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        """Physical function name -> how it runs."""
        return dict(self._provisioned.functions)

    @property
    def pumps(self) -> list[QueuePump]:
        return list(self._provisioned.pumps)

    @property
    def outputs(self) -> dict[str, str]:
        """The stack's outputs as the local runtime resolved them (what `--stack` reads from
        CloudFormation on AWS): table names, ARNs, URLs."""
        return dict(self._provisioned.outputs)

    def physical_name(self, logical_id: str) -> str:
        return self.resources[logical_id].name

    def find(self, resource_type: str, contains: str = "") -> list[ResourceInfo]:
        """Resources of a type whose logical id contains ``contains`` (CDK adds hashes)."""
        return [
            r
            for r in self.resources.values()
            if r.type == resource_type and contains in r.logical_id
        ]

    def bus_names(self) -> list[str]:
        return [r.name for r in self.find("AWS::Events::EventBus")]

    # --- clients -------------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        """The runtime's own client (its calls count in ``runtime_api_calls``)."""
        if service not in self._clients:
            client = self._session.client(service, region_name=REGION)
            self._internal_signers.add(client._request_signer)
            self._clients[service] = client
        return self._clients[service]

    def client(self, service: str) -> Any:
        """A client like a handler's (its calls count in ``api_calls``)."""
        return boto3.client(service, region_name=REGION)

    # --- producing events ----------------------------------------------------------------
    def put_events(
        self, entries: Iterable[Mapping[str, Any]], bus: str | None = None
    ) -> list[dict[str, Any]]:
        """PutEvents, 10 at a time, as a producer would (counted in ``api_calls``).

        ``Detail`` may be a dict; ``EventBusName`` defaults to ``bus`` or the template's
        only custom bus.
        """
        default_bus = bus or self._default_bus()
        prepared = []
        for entry in entries:
            item = dict(entry)
            if not isinstance(item.get("Detail"), str):
                item["Detail"] = json.dumps(item.get("Detail", {}))
            item.setdefault("EventBusName", default_bus)
            prepared.append(item)
        results: list[dict[str, Any]] = []
        events = self.client("events")
        with self._drive_lock, self._phase("put_events"):
            for start in range(0, len(prepared), 10):
                response = events.put_events(Entries=prepared[start : start + 10])
                results.extend(response["Entries"])
        return results

    def _default_bus(self) -> str:
        buses = self.bus_names()
        return buses[0] if len(buses) == 1 else "default"

    # --- the patches' host interface -----------------------------------------------------
    def _touch(self) -> None:
        self._activity += 1

    # --- the watchdog ----------------------------------------------------------------------
    def _phase(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Mark what the runtime is driving (the watchdog counts stalls only meanwhile)."""
        if self.watchdog is None:
            return contextlib.nullcontext()
        return self.watchdog.phase(what)

    def _progress(self) -> tuple[int, datetime]:
        return self.runner.completed, self.clock.now()

    def describe_waits(self) -> str:
        """What the runtime waits for now: the clock, the function running, the timers, the
        execution threads, the deliveries (for a stall report; reads without locking)."""
        now = time.monotonic()
        lines = [f"virtual clock: {self.clock.now().isoformat()}"]
        running = list(self.runner.running)
        lines.append(
            "function running: "
            + (
                "; ".join(
                    f"{name} on thread {ident} for {now - since:.1f}s"
                    for name, ident, since in running
                )
                or "none"
            )
        )
        pending = self.timeline.pending()
        lines.append(
            f"parked on the clock: {len(pending)} timers, {self.timeline.waking()} woken but "
            "not resumed"
        )
        for timer in pending[:10]:
            lines.append(f"  due {timer.due.isoformat()} {'/'.join(timer.key)}")
        alive, busy = executions.survey(self.timeline, prune=False)
        lines.append(f"execution threads: {alive} alive, {len(busy)} busy (not parked or blocked)")
        if busy:
            lines.append("  " + executions.describe(busy))
        lines.append(
            f"deliveries queued: {len(self._deliveries)}; SQS messages parked until their "
            f"visibility timeout: {len(self._parked)}"
        )
        return "\n".join(lines)

    def invoke_from_moto(self, function_name: str, event: Any) -> tuple[str, bool, str]:
        spec = self._function(function_name)
        if spec is None:
            return json.dumps(unknown_function_error(function_name)), True, ""
        if isinstance(event, str | bytes):
            event = json.loads(event) if event else {}
        invocation = self._invoke(spec, event, source="invoke")
        return json.dumps(invocation.payload()), not invocation.ok, ""

    def invoke_async(self, function_arn: str, payload: str) -> None:
        """An ``InvocationType="Event"`` invoke: queued, run by the driver like an
        EventBridge or Scheduler hand-off (retries, then the on-failure destination)."""
        self._deliveries.append(Delivery("lambda", function_arn, payload, "invoke"))

    def deliver_event_target(
        self, rule: Any, target: dict[str, Any], event: dict[str, Any]
    ) -> bool:
        arn = str(target.get("Arn", ""))
        service = _service(arn)
        if service == "events" and arn.endswith(":::"):  # moto's archive target
            return backends.archive_event(target, event)
        if service not in ("sqs", "lambda", "states", "sns"):
            return False
        payload = self._target_payload(target, event, str(getattr(rule, "arn", "")))
        dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
        copies = 1
        if self.faults is not None and self.faults.duplicate("events", f"to {arn}"):
            copies = 2
        for _ in range(copies):  # EventBridge delivers at least once
            if service == "sqs":
                group = (target.get("SqsParameters") or {}).get("MessageGroupId")
                backends.send_to_queue(arn.rsplit(":", 1)[-1], payload, group)
            else:
                self._deliveries.append(Delivery(service, arn, payload, rule.arn, dead_letter))
        self._touch()
        return True

    def interpreter_client(self, client: Any) -> None:
        self._interpreter_signers.add(client._request_signer)

    def before_call(
        self,
        service: str,
        operation: str,
        request: dict[str, Any],
        signer: Any,
        context: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]] | None:
        self._touch()
        internal = signer is not None and signer in self._internal_signers
        owner = current_function()
        with self._counter_lock:
            (self.runtime_api_calls if internal else self.api_calls)[(service, operation)] += 1
            if not internal:
                self.calls_by_function[owner or "(outside functions)"][(service, operation)] += 1
        # faults reach the app's calls only: a handler's, or the Step Functions interpreter's
        if (
            self.faults is not None
            and not internal
            and (owner is not None or (signer is not None and signer in self._interpreter_signers))
        ):
            where = f"{owner or 'states'} at {self.clock.now().isoformat()}"
            refused = self.faults.before_call(
                service, operation, str(request.get("url", "")), context, where
            )
            if refused is not None:
                return refused
        if service == "pinpoint" and operation == "SendMessages":
            return self._fake_pinpoint_send(request)
        if service == "pinpoint-sms-voice-v2" and operation == "SendTextMessage":
            return self._fake_sms_v2(request)
        if service == "sesv2" and operation == "SendEmail":
            context["kizuna_local_body"] = request.get("body")
        return None

    def after_call(
        self,
        service: str,
        operation: str,
        http: Any,
        parsed: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        if service == "sesv2" and operation == "SendEmail" and parsed.get("MessageId"):
            body = context.get("kizuna_local_body")
            try:
                request = json.loads(body) if body else None
            except (TypeError, ValueError):
                request = None
            self._email_requests[str(parsed["MessageId"])] = request
            if self.engagement is not None:
                self.engagement.sent(str(parsed["MessageId"]), request, self.clock.now())
        if self.faults is not None:
            self.faults.after_call(http, parsed, context)

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """HTTP to a Lambda function URL runs the function; LINE's API is recorded; a user
        pool's JWKS is moto's public key set; a webhook endpoint's receiver answers."""
        parsed = urllib.parse.urlsplit(url)
        if (parsed.hostname or "").startswith("cognito-idp."):
            return self._user_pool_jwks(parsed.path)
        spec = self._provisioned.function_urls.get(parsed.hostname or "")
        if spec is not None:
            return self._function_url_request(spec, method, parsed, headers, body)
        if ".lambda-url." in (parsed.hostname or ""):
            return 404, {"Content-Type": "application/json"}, b'{"Message":"Not Found"}'
        if self.webhooks.handles(parsed.hostname or ""):
            return self.webhooks.request(method, url, headers, body)
        return self._line_request(method, url, headers, body)

    def _browse(self, method: str, url: str) -> int:
        """A simulated recipient's browser following a link (no redirect followed)."""
        headers = {"User-Agent": "Mozilla/5.0 (kizuna-local simulated recipient)"}
        status, _, _ = self.http_request(method, url, headers, None)
        return status

    def intercepts(self, host: str) -> bool:
        """Whether HTTPS to ``host`` is answered here besides LINE's and AWS's hosts: the
        shop's webhook endpoints (:mod:`kizuna_tools.local.webhooks`)."""
        return self.webhooks.handles(host)

    def _secret_value(self, secret_id: str) -> str:
        value: str = self._client("secretsmanager").get_secret_value(SecretId=secret_id)[
            "SecretString"
        ]
        return value

    def _user_pool_jwks(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """``/<pool>/.well-known/jwks.json``: the keys moto signs its Cognito tokens with."""
        from moto.utilities.utils import load_resource

        parts = path.strip("/").split("/")
        headers = {"Content-Type": "application/json"}
        if (
            len(parts) == 3
            and parts[1:] == [".well-known", "jwks.json"]
            and parts[0] in backends.backend("cognito-idp").user_pools
        ):
            keys = load_resource("cognitoidp/resources/jwks-public.json")
            return 200, headers, json.dumps(keys).encode()
        return 404, headers, b'{"message":"User pool does not exist."}'

    def _function_url_request(
        self,
        spec: FunctionSpec,
        method: str,
        url: urllib.parse.SplitResult,
        headers: dict[str, str],
        body: bytes | None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Invoke a function as its function URL does (payload format 2.0)."""
        now = self.clock.now()
        text: str | None = None
        encoded = False
        if body:
            try:
                text = body.decode()
            except UnicodeDecodeError:
                text, encoded = base64.b64encode(body).decode(), True
        lowered = {k.lower(): v for k, v in headers.items()}
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": url.path or "/",
            "rawQueryString": url.query,
            "headers": lowered,
            "requestContext": {
                "accountId": "anonymous",
                "apiId": (url.hostname or "").split(".")[0],
                "domainName": url.hostname,
                "domainPrefix": (url.hostname or "").split(".")[0],
                "http": {
                    "method": method,
                    "path": url.path or "/",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": lowered.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": encoded,
        }
        if query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
        if lowered.get("cookie"):
            event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
        if text is not None:
            event["body"] = text
        invocation = self._invoke(spec, event, source=f"url:{url.hostname}")
        if not invocation.ok:
            return 502, {"Content-Type": "application/json"}, b'{"Message":"Internal Server Error"}'
        result = invocation.result
        if not (isinstance(result, dict) and "statusCode" in result):
            # A function URL treats any other result as a 200 JSON body.
            return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
        response_headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
        return int(result["statusCode"]), response_headers, raw

    def _line_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """The LINE Messaging API recorder."""
        payload: Any = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode(errors="replace")
        redacted = {
            k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in headers.items()
        }
        request_id = str(uuid.uuid4())
        response_headers = {"Content-Type": "application/json", "x-line-request-id": request_id}
        path = url.split(".line.me", 1)[-1].split("?", maxsplit=1)[0]
        if method == "POST" and path.startswith("/v2/bot/message/"):
            messages = payload.get("messages") if isinstance(payload, dict) else None
            if (
                not isinstance(messages, list)
                or not 1 <= len(messages) <= 5
                or (path.endswith("/push") and not payload.get("to"))
            ):
                error = {
                    "message": "The request body has 1 error(s)",
                    "details": [
                        {"message": "invalid messages or recipient", "property": "messages"}
                    ],
                }
                return 400, response_headers, json.dumps(error).encode()
            retry_key = {k.lower(): v for k, v in headers.items()}.get("x-line-retry-key")
            if retry_key in self._line_retry_keys:
                # LINE accepts a retry key once (24 hours): 409, nothing sent again
                accepted, sent = self._line_retry_keys[retry_key]
                conflict = {"message": "The retry key is already accepted", "sentMessages": sent}
                response_headers["x-line-accepted-request-id"] = accepted
                return 409, response_headers, json.dumps(conflict).encode()
            self._line.append(
                {
                    "method": method,
                    "url": url,
                    "path": path,
                    "headers": redacted,
                    "body": payload,
                    "to": payload.get("to"),
                    "messages": messages,
                    "request_id": request_id,
                    "at": self.clock.now(),
                }
            )
            sent = [
                {"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex} for _ in messages
            ]
            if retry_key:
                self._line_retry_keys[retry_key] = (request_id, sent)
            if self.engagement is not None:
                self.engagement.line_sent(messages, self.clock.now())
            return 200, response_headers, json.dumps({"sentMessages": sent}).encode()
        self._line.append(
            {
                "method": method,
                "url": url,
                "path": path,
                "headers": redacted,
                "body": payload,
                "request_id": request_id,
                "at": self.clock.now(),
            }
        )
        return 200, response_headers, b"{}"

    # --- fakes where moto has nothing ------------------------------------------------------
    def _fake_response(
        self, url: str, status: int, parsed: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        request_id = str(uuid.uuid4())
        parsed["ResponseMetadata"] = {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {},
            "RetryAttempts": 0,
        }
        return AWSResponse(url, status, {"x-amzn-requestid": request_id}, None), parsed

    def _fake_pinpoint_send(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        url = str(request.get("url", "https://pinpoint.us-east-1.amazonaws.com"))
        parts = str(request.get("url_path", "")).split("/")
        application_id = parts[3] if len(parts) > 3 else ""
        if not backends.pinpoint_app_exists(application_id):
            return self._fake_response(
                url,
                404,
                {
                    "Error": {"Code": "NotFoundException", "Message": "Resource not found"},
                    "Message": "Resource not found",
                },
            )
        body = request.get("body") or b"{}"
        message_request = json.loads(body)
        configuration = message_request.get("MessageConfiguration", {})
        now = self.clock.now()
        result: dict[str, Any] = {}
        for address, spec in (message_request.get("Addresses") or {}).items():
            message_id = str(uuid.uuid4())
            result[address] = {
                "DeliveryStatus": "SUCCESSFUL",
                "StatusCode": 200,
                "StatusMessage": "Accepted by kizuna_tools.local",
                "MessageId": message_id,
            }
            # a batch's per-address Context (AddressConfiguration), else the request's
            context = spec.get("Context") or message_request.get("Context")
            self._push.append(
                {
                    "application_id": application_id,
                    "address": address,
                    "channel_type": spec.get("ChannelType"),
                    "message": _with_overrides(configuration, spec),
                    "context": context,
                    "trace_id": message_request.get("TraceId"),
                    "message_id": message_id,
                    "at": now,
                }
            )
            if self.engagement is not None:
                self.engagement.push_sent(context, str(spec.get("ChannelType") or ""), now)
        endpoint_result: dict[str, Any] = {}
        for endpoint_id in message_request.get("Endpoints") or {}:
            message_id = str(uuid.uuid4())
            endpoint_result[endpoint_id] = {
                "Address": "",
                "DeliveryStatus": "SUCCESSFUL",
                "StatusCode": 200,
                "MessageId": message_id,
                "StatusMessage": "Accepted by kizuna_tools.local",
            }
            self._push.append(
                {
                    "application_id": application_id,
                    "endpoint_id": endpoint_id,
                    "message": configuration,
                    "context": message_request.get("Context"),
                    "trace_id": message_request.get("TraceId"),
                    "message_id": message_id,
                    "at": now,
                }
            )
        response: dict[str, Any] = {"ApplicationId": application_id, "RequestId": str(uuid.uuid4())}
        if result:
            response["Result"] = result
        if endpoint_result:
            response["EndpointResult"] = endpoint_result
        return self._fake_response(url, 200, {"MessageResponse": response})

    def _fake_sms_v2(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        params = json.loads(request.get("body") or b"{}")
        message_id = str(uuid.uuid4())
        self._sms_v2.append(
            {
                "message_id": message_id,
                "phone_number": params.get("DestinationPhoneNumber"),
                "message": params.get("MessageBody"),
                "origination_identity": params.get("OriginationIdentity"),
                "api": "pinpoint-sms-voice-v2",
                "at": self.clock.now(),
            }
        )
        url = str(request.get("url", "https://sms-voice.us-east-1.amazonaws.com"))
        return self._fake_response(url, 200, {"MessageId": message_id})

    # --- outputs ---------------------------------------------------------------------------
    def outbox(self, channel: str) -> list[dict[str, Any]]:
        """Messages sent on a channel: ``email``, ``sms``, ``push``, ``line`` or ``webhook``."""
        if channel == "email":
            emails = backends.sent_emails()
            for email in emails:
                request = self._email_requests.get(str(email.get("message_id")))
                if request is not None:
                    email["request"] = request
            return emails
        if channel == "sms":
            return backends.sent_sms() + list(self._sms_v2)
        if channel == "push":
            return list(self._push)
        if channel == "line":
            return list(self._line)
        if channel == "webhook":  # what the receivers accepted (once per idempotency key)
            return list(self.webhooks.accepted)
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")

    def dlq_messages(self) -> dict[str, list[dict[str, Any]]]:
        """Every dead-letter queue's messages (not received: nothing changes)."""
        return {
            logical_id: backends.queue_messages(name)
            for name, logical_id in sorted(self._provisioned.dead_letter_queues.items())
        }

    def summary(self) -> dict[str, Any]:
        """What happened so far, JSON-ready (for the CLI, and for test failure messages)."""
        executions: dict[str, dict[str, int]] = {}
        for (machine, status), count in sorted(self.execution_counts().items()):
            executions.setdefault(machine, {})[status] = count
        return {
            "clock": self.clock.now().isoformat(),
            "invocations": dict(sorted(self.invocations.items())),
            "errors": [
                {
                    "function": e.function,
                    "source": e.source,
                    "at": e.at.isoformat(),
                    "type": e.error.get("errorType"),
                    "message": e.error.get("errorMessage"),
                }
                for e in self.errors
            ],
            "delivery_errors": [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in e.items()}
                for e in self.delivery_errors
            ],
            "dlq": {name: len(messages) for name, messages in self.dlq_messages().items()},
            "executions": executions,
            "outbox": {channel: len(self.outbox(channel)) for channel in CHANNELS},
            "api_calls": {f"{s}:{o}": n for (s, o), n in sorted(self.api_calls.items())},
            "unsupported": [list(u) for u in self.unsupported],
            "faults": self.faults.summary() if self.faults is not None else None,
            "engagement": (
                dict(sorted(self.engagement.emitted.items()))
                if self.engagement is not None
                else None
            ),
        }

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        """Every item of a table, as plain Python values (a runtime call, not counted)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        paginator = self._client("dynamodb").get_paginator("scan")
        items = []
        for page in paginator.paginate(TableName=self.physical_name(logical_id)):
            for item in page.get("Items", []):
                items.append({k: deserializer.deserialize(v) for k, v in item.items()})
        return items

    def execution_counts(self) -> Counter[tuple[str, str]]:
        """(state machine name, status) -> number of executions."""
        sfn = self._client("stepfunctions")
        counts: Counter[tuple[str, str]] = Counter()
        for machine in sfn.list_state_machines().get("stateMachines", []):
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine["stateMachineArn"]
            ):
                for execution in page.get("executions", []):
                    counts[(machine["name"], execution["status"])] += 1
        return counts

    # --- running functions ---------------------------------------------------------------
    def _function(self, name_or_arn: str) -> FunctionSpec | None:
        name = name_or_arn.rsplit(":function:", maxsplit=1)[-1].split(":", maxsplit=1)[0]
        return self._provisioned.functions.get(name)

    def _invoke(self, spec: FunctionSpec, event: Any, *, source: str) -> Invocation:
        self._touch()
        invocation = self.runner.invoke(spec, event)
        with self._counter_lock:
            self.invocations[spec.logical_id] += 1
        if not invocation.ok and invocation.error is not None:
            self.errors.append(FunctionError(spec.name, source, invocation.error, self.clock.now()))
            LOG.debug("%s failed (%s): %s", spec.name, source, invocation.error)
        return invocation

    def invoke(self, logical_id_or_name: str, event: Any) -> Invocation:
        """Call a function directly, synchronously (no API call)."""
        spec = self._function(logical_id_or_name) or next(
            (f for f in self._provisioned.functions.values() if f.logical_id == logical_id_or_name),
            None,
        )
        if spec is None:
            raise KeyError(f"no function {logical_id_or_name!r}")
        with self._phase(f"invoke {spec.name}"):
            return self._invoke(spec, event, source="direct")

    # --- EventBridge payloads and deliveries ---------------------------------------------
    def _target_payload(
        self, target: dict[str, Any], event: dict[str, Any], rule_arn: str = ""
    ) -> str:
        clean = {k: v for k, v in event.items() if k != "ingestion-time"}
        clean["time"] = _iso(event.get("time", self.clock.epoch()))
        if "Input" in target:
            return str(target["Input"])
        if "InputPath" in target:
            matches = _jsonpath(str(target["InputPath"])).find(clean)
            return json.dumps(matches[0].value if matches else None)
        transformer = target.get("InputTransformer")
        if transformer:
            return self._transform(transformer, clean, event, rule_arn)
        return json.dumps(clean)

    def _transform(
        self,
        transformer: dict[str, Any],
        clean: dict[str, Any],
        event: dict[str, Any],
        rule_arn: str,
    ) -> str:
        template = str(transformer.get("InputTemplate", ""))
        values: dict[str, Any] = {}
        for name, path in (transformer.get("InputPathsMap") or {}).items():
            matches = _jsonpath(str(path)).find(clean)
            values[name] = matches[0].value if matches else None
        values["aws.events.event.json"] = clean
        values["aws.events.event.ingestion-time"] = _iso(
            event.get("ingestion-time", self.clock.epoch())
        )
        values["aws.events.rule-arn"] = rule_arn
        values["aws.events.rule-name"] = rule_arn.rsplit("/", 1)[-1]
        return fill_input_template(template, values)

    def _process_deliveries(self) -> int:
        done = 0
        while self._deliveries:
            delivery = self._deliveries.popleft()
            done += 1
            with self._phase(f"deliver to {delivery.target_arn}"):
                self._deliver(delivery)
        return done

    def _deliver(self, delivery: Delivery) -> None:
        try:
            if delivery.kind == "lambda":
                self._deliver_lambda(delivery)
            elif delivery.kind == "states":
                self._client("stepfunctions").start_execution(
                    **start_execution_parameters(delivery.target_arn, delivery.payload)
                )
            elif delivery.kind == "sns":
                self._client("sns").publish(TopicArn=delivery.target_arn, Message=delivery.payload)
        except Exception as exc:  # the target is gone or refused: EventBridge's (Scheduler's) DLQ
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            self._delivery_failed(delivery, str(code or type(exc).__name__), str(exc))

    def _deliver_lambda(self, delivery: Delivery) -> None:
        spec = self._function(delivery.target_arn)
        if spec is None:
            self._delivery_failed(
                delivery,
                "ResourceNotFoundException",
                f"function {delivery.target_arn} does not exist locally",
            )
            return
        try:
            event: Any = json.loads(delivery.payload)
        except ValueError:
            event = delivery.payload  # an InputTransformer's plain-text output
        invocation = self._invoke(spec, event, source=delivery.source_arn)
        attempts = 1
        while not invocation.ok and attempts <= spec.max_retry_attempts:
            invocation = self._invoke(spec, event, source=delivery.source_arn)
            attempts += 1
        if invocation.ok:
            return
        error = invocation.error or {}
        if spec.on_failure_arn:
            record = {
                "version": "1.0",
                "timestamp": self.clock.now().isoformat(),
                "requestContext": {
                    "requestId": invocation.request_id,
                    "functionArn": f"{spec.arn}:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": event,
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "responsePayload": error,
            }
            self._send_to(spec.on_failure_arn, json.dumps(record), {})
        elif spec.dead_letter_arn:
            self._send_to(
                spec.dead_letter_arn,
                delivery.payload,
                {
                    "RequestID": invocation.request_id,
                    "ErrorCode": "200",
                    "ErrorMessage": str(error.get("errorMessage", ""))[:1000],
                },
            )

    def _delivery_failed(self, delivery: Delivery, code: str, message: str) -> None:
        self.delivery_errors.append(
            {
                "target": delivery.target_arn,
                "source": delivery.source_arn,
                "code": code,
                "message": message,
                "at": self.clock.now(),
            }
        )
        if delivery.dead_letter_arn and _service(delivery.source_arn) == "scheduler":
            self._send_to(
                delivery.dead_letter_arn,
                delivery.payload,
                scheduler_dead_letter_attributes(
                    schedule_arn=delivery.source_arn,
                    target_arn=delivery.target_arn,
                    execution_id=delivery.execution_id or str(uuid.uuid4()),
                    code=code,
                    message=message,
                ),
            )
        elif delivery.dead_letter_arn:
            self._send_to(
                delivery.dead_letter_arn,
                delivery.payload,
                {
                    "ERROR_CODE": code,
                    "ERROR_MESSAGE": message[:1000],
                    "RULE_ARN": delivery.source_arn,
                    "TARGET_ARN": delivery.target_arn,
                },
            )

    def _send_to(self, arn: str, body: str, attributes: dict[str, str]) -> None:
        message_attributes = {
            k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()
        }
        if _service(arn) == "sqs":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{arn.rsplit(':', 1)[-1]}"
            self._client("sqs").send_message(
                QueueUrl=url, MessageBody=body, MessageAttributes=message_attributes
            )
        elif _service(arn) == "sns":
            self._client("sns").publish(
                TopicArn=arn, Message=body, MessageAttributes=message_attributes
            )
        else:
            self.delivery_errors.append(
                {
                    "target": arn,
                    "code": "Unsupported",
                    "message": "only SQS and SNS failure destinations",
                    "at": self.clock.now(),
                }
            )

    # --- SQS pumps ---------------------------------------------------------------------------
    def _run_pump(self, pump: QueuePump) -> int:
        sqs = self._client("sqs")
        processed = 0
        while True:
            if not backends.queue_has_visible(pump.queue_name):
                return processed
            messages: list[dict[str, Any]] = []
            while len(messages) < pump.batch_size:
                response = sqs.receive_message(
                    QueueUrl=pump.queue_url,
                    MaxNumberOfMessages=min(10, pump.batch_size - len(messages)),
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=0,
                    VisibilityTimeout=max(pump.visibility_timeout, 1),
                )
                received = response.get("Messages", [])
                if not received:
                    break
                messages.extend(received)
            if not messages:
                return processed
            processed += len(messages)
            with self._phase(f"SQS batch of {len(messages)} from {pump.queue_name}"):
                self._run_batch(pump, messages)

    def _duplicates(self, done: list[dict[str, Any]]) -> set[str]:
        """Messages processed that an injected fault delivers once more (once at most)."""
        if self.faults is None:
            return set()
        again = set()
        for record in done:
            message_id = record["messageId"]
            if message_id not in self._duplicated and self.faults.duplicate(
                "sqs", f"{record['eventSourceARN']} at {self.clock.now().isoformat()}"
            ):
                self._duplicated.add(message_id)
                again.add(message_id)
        return again

    def _sqs_record(self, pump: QueuePump, message: dict[str, Any]) -> dict[str, Any]:
        now_ms = str(int(self.clock.epoch() * 1000))
        attributes = dict(message.get("Attributes", {}))
        # moto stamps wall-clock times; handlers see virtual ones.
        attributes["SentTimestamp"] = now_ms
        attributes["ApproximateFirstReceiveTimestamp"] = now_ms
        message_attributes = {}
        for name, value in (message.get("MessageAttributes") or {}).items():
            binary = value.get("BinaryValue")
            message_attributes[name] = {
                "stringValue": value.get("StringValue"),
                "binaryValue": (
                    base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary
                ),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType", "String"),
            }
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": pump.queue_arn,
            "awsRegion": REGION,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _matches_filters(self, pump: QueuePump, record: dict[str, Any]) -> bool:
        if not pump.filters:
            return True
        view = dict(record)
        with contextlib.suppress(ValueError):
            view["body"] = json.loads(record["body"])
        return any(f.matches_event(view) for f in pump.filters)

    def _run_batch(self, pump: QueuePump, messages: list[dict[str, Any]]) -> None:
        records = [self._sqs_record(pump, m) for m in messages]
        kept = [r for r in records if self._matches_filters(pump, r)]
        failed_ids: set[str] = set()
        if kept:
            invocation = self._invoke(pump.function, {"Records": kept}, source=pump.queue_arn)
            ids = {r["messageId"] for r in kept}
            if not invocation.ok:
                failed_ids = ids
            elif pump.report_failures and isinstance(invocation.result, dict):
                reported = invocation.result.get("batchItemFailures") or []
                identifiers = [
                    f.get("itemIdentifier") if isinstance(f, dict) else None for f in reported
                ]
                if any(not i or i not in ids for i in identifiers):
                    failed_ids = ids  # Lambda treats a malformed response as all failed
                else:
                    failed_ids = {str(i) for i in identifiers}
        sqs = self._client("sqs")
        done = [r for r in records if r["messageId"] not in failed_ids]
        again = self._duplicates(done)
        if again:  # processed, but SQS delivers it once more (at-least-once)
            done = [r for r in done if r["messageId"] not in again]
            for start in range(0, len(again), 10):
                sqs.change_message_visibility_batch(
                    QueueUrl=pump.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
                        for n, r in enumerate(
                            [r for r in records if r["messageId"] in again][start : start + 10]
                        )
                    ],
                )
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=pump.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": r["receiptHandle"]}
                    for n, r in enumerate(done[start : start + 10])
                ],
            )
        failed = [r for r in records if r["messageId"] in failed_ids]
        if not failed:
            return
        if pump.redrive:  # visible again at once; moto moves it to the DLQ on a later receive
            for start in range(0, len(failed), 10):
                sqs.change_message_visibility_batch(
                    QueueUrl=pump.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
                        for n, r in enumerate(failed[start : start + 10])
                    ],
                )
        else:  # no DLQ: retried when its visibility timeout has passed in virtual time
            due = self.clock.now() + timedelta(seconds=pump.visibility_timeout)
            for r in failed:
                self._parked.append(
                    _Parked(due, r["messageId"], pump.queue_url, r["receiptHandle"])
                )

    # --- driving ---------------------------------------------------------------------------
    def wait_for_executions(self, timeout: float | None = None) -> None:
        """Wait (real time) until every execution is finished or parked on the clock.

        Fails loudly, with the busy threads' stacks, when nothing has progressed (no AWS call,
        no delivery) for ``timeout`` seconds: a long batch that keeps calling is not a hang.
        """
        with self._phase("wait for the executions"):
            self._wait_for_executions(timeout)

    def _wait_for_executions(self, timeout: float | None) -> None:
        limit = timeout if timeout is not None else self.execution_timeout
        deadline = time.monotonic() + limit
        progress = (self._activity, self.api_calls.total())
        delay = 0.0002
        while True:
            alive, busy = executions.survey(self.timeline)
            if alive == 0 and self.timeline.waking() == 0:
                return  # no execution thread at all
            if self.timeline.waking() == 0 and not busy:
                # Idle twice in a row with nothing happening in between: quiescent.
                before = self._activity
                time.sleep(0.0002)
                if (
                    self._activity == before
                    and self.timeline.waking() == 0
                    and not executions.survey(self.timeline)[1]
                ):
                    return
            if time.monotonic() > deadline:
                now = (self._activity, self.api_calls.total())
                if now != progress:  # still working: give it another period
                    progress, deadline = now, time.monotonic() + limit
                    continue
                busy = executions.busy_threads(self.timeline)
                raise LocalCloudError(
                    f"executions made no progress for {limit}s: " + executions.describe(busy)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.002)

    def drain(self, max_rounds: int = 100_000) -> int:
        """Run everything due now (deliveries, queue pumps, executions) until quiescent.

        Returns how many deliveries and messages were handled.
        """
        total = 0
        with self._drive_lock, self._phase("drain"):
            for _ in range(max_rounds):
                self.wait_for_executions()
                worked = self._process_deliveries()
                for pump in self._provisioned.pumps:
                    if pump.enabled:
                        worked += self._run_pump(pump)
                total += worked
                if worked == 0:
                    return total
        raise LocalCloudError(f"drain did not settle after {max_rounds} rounds")

    def advance(
        self,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        *,
        wake: Wake = "one",
    ) -> datetime:
        """Move the clock forward, firing what falls due in time order and draining after each.

        Due things are Wait states and Retry intervals (woken one at a time, in order of
        due time then execution ARN; ``wake="batch"`` wakes all that share an instant),
        schedule rules, Scheduler schedules, and SQS messages whose visibility timeout
        ended. TTL expiry runs as time passes (at most every ``ttl_sweep_interval``) and
        at the end.
        """
        delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if delta < timedelta(0):
            raise ValueError("advance() only moves forward")
        return self.advance_to(self.clock.now() + delta, wake=wake)

    def advance_to(self, target: datetime, *, wake: Wake = "one") -> datetime:
        with self._drive_lock, self._phase(f"advance to {target.isoformat()}"):
            self.drain()
            while True:
                due = self._next_due(target)
                if due is None:
                    break
                when, fire = due
                if when > self.clock.now():
                    self.clock.set(when)
                    self._time_moved()
                fire(wake)
                self.drain()
            if target > self.clock.now():
                self.clock.set(target)
            self._time_moved()
            self.drain()
        return self.clock.now()

    def _time_moved(self) -> None:
        now = self.clock.now()
        if now - self._last_ttl_sweep >= self.ttl_sweep_interval:
            self._last_ttl_sweep = now
            backends.expire_ttl(now.timestamp())

    def _schedule(
        self, arn: str, expression: str, timezone: str, anchor: datetime
    ) -> Schedule | None:
        key = (arn, expression, timezone, anchor)
        if key not in self._schedule_cache:
            try:
                self._schedule_cache[key] = parse_schedule(
                    expression, anchor=anchor, timezone=timezone
                )
            except ValueError as exc:
                LOG.warning("schedule %s (%s) cannot run locally: %s", arn, expression, exc)
                return None
        return self._schedule_cache[key]

    def _next_due(self, limit: datetime) -> tuple[datetime, Callable[[Wake], None]] | None:
        now = self.clock.now()
        candidates: list[tuple[datetime, int, str, Callable[[Wake], None]]] = []
        waiting = self.timeline.next_due()
        if waiting is not None:
            candidates.append((max(waiting, now), 0, "", self._wake))
        for rule in backends.scheduled_rules():
            anchor = self._first_seen.setdefault(rule.arn, now)
            schedule = self._schedule(rule.arn, rule.expression, "UTC", anchor)
            if schedule is None:
                continue
            when = schedule.next_after(self._last_fired.get(rule.arn, anchor))
            if when is not None:
                candidates.append(
                    (when, 1, rule.arn, functools.partial(self._fire_rule, rule, when))
                )
        for item in backends.schedules():
            if item.state != "ENABLED":
                continue
            start = _parse_date(item.start_date)
            anchor = self._first_seen.setdefault(item.arn, start or now)
            schedule = self._schedule(
                item.arn,
                item.schedule_expression,
                item.schedule_expression_timezone or "UTC",
                anchor,
            )
            if schedule is None:
                continue
            after = self._last_fired.get(
                item.arn, anchor - timedelta(microseconds=1) if start else anchor
            )
            when = schedule.next_after(after)
            end = _parse_date(item.end_date)
            if when is not None and (end is None or when <= end):
                candidates.append(
                    (when, 2, item.arn, functools.partial(self._fire_schedule, item, when))
                )
        if self._parked:
            first = min(self._parked)
            candidates.append((first.due, 3, first.message_id, self._release_parked))
        engagement_due = self.engagement.next_due() if self.engagement is not None else None
        if engagement_due is not None:
            candidates.append((max(engagement_due, now), 4, "", self._fire_engagement))
        due = [c for c in candidates if c[0] <= limit]
        if not due:
            return None
        when, _, _, fire = min(due, key=lambda c: (c[0], c[1], c[2]))
        return when, fire

    def _fire_engagement(self, _wake: Wake) -> None:
        if self.engagement is not None:
            self.engagement.fire(self.clock.now())

    def _emit_ses_event(self, detail_type: str, detail: dict[str, Any], at: datetime) -> None:
        """What SES's configuration set destination does: the event on the default bus."""
        self._client("events").put_events(
            Entries=[
                {
                    "Source": "aws.ses",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": "default",
                    "Time": at,
                }
            ]
        )

    def _emit_app_event(self, detail_type: str, detail: dict[str, Any], at: datetime) -> None:
        """What the shop's app does: its event (``push.opened``) on Kizuna's bus."""
        self._client("events").put_events(
            Entries=[
                {
                    "Source": APP_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._default_bus(),
                    "Time": at,
                }
            ]
        )

    def _rfm_segment(self, customer_id: str) -> str | None:
        table = self.find("AWS::DynamoDB::Table", "Customers")
        if not table:
            return None
        item = (
            self._client("dynamodb")
            .get_item(
                TableName=table[0].name,
                Key={"customer_id": {"S": customer_id}},
                ProjectionExpression="rfm_segment",
            )
            .get("Item")
            or {}
        )
        return (item.get("rfm_segment") or {}).get("S")

    def _wake(self, wake: Wake) -> None:
        first = self.timeline.release_next(self.clock.now())
        if first is None or wake == "one":
            return
        while self.timeline.next_due() == first.due:
            if self.timeline.release_next(first.due) is None:
                break

    def _release_parked(self, _wake: Wake) -> None:
        now = self.clock.now()
        due = [p for p in self._parked if p.due <= now]
        self._parked = [p for p in self._parked if p.due > now]
        sqs = self._client("sqs")
        for parked in due:
            try:
                sqs.change_message_visibility(
                    QueueUrl=parked.queue_url,
                    ReceiptHandle=parked.receipt_handle,
                    VisibilityTimeout=0,
                )
            except Exception as exc:  # deleted or received meanwhile: nothing to release
                LOG.debug("parked message %s not released: %s", parked.message_id, exc)

    def _fire_rule(self, rule: backends.ScheduledRule, when: datetime, _wake: Wake) -> None:
        self._last_fired[rule.arn] = when
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": _iso(when),
            "region": REGION,
            "resources": [rule.arn],
            "detail": {},
        }
        for target in list(rule.rule.targets):
            if self.deliver_event_target(rule.rule, target, event):
                continue
            arn = str(target.get("Arn", ""))
            if _service(arn) == "events" and ":event-bus/" in arn:
                _put_on_bus(arn, "aws.events", "Scheduled Event", "{}", rule.arn, when)
            else:
                self._undelivered(arn, rule.arn, when, "scheduled target not delivered")

    def _undelivered(self, target: str, source: str, when: datetime, message: str) -> None:
        """A scheduled target the local runtime does not deliver to, kept as an error."""
        self.delivery_errors.append(
            {
                "target": target,
                "source": source,
                "at": when,
                "code": "Unsupported",
                "message": message,
            }
        )

    def _fire_schedule(self, item: Any, when: datetime, _wake: Wake) -> None:
        self._last_fired[item.arn] = when
        target = dict(item.target)
        arn = str(target["Arn"])
        payload = str(target.get("Input") or "{}")
        execution_id = str(uuid.uuid4())
        for placeholder, value in (
            ("<aws.scheduler.scheduled-time>", _iso(when)),
            ("<aws.scheduler.schedule-arn>", item.arn),
            ("<aws.scheduler.execution-id>", execution_id),
            ("<aws.scheduler.attempt-number>", "1"),
        ):
            payload = payload.replace(placeholder, value)
        dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
        service = _service(arn)
        if arn == SFN_START_EXECUTION_TARGET:  # the universal target: the input is the request
            self._deliveries.append(
                Delivery("states", arn, payload, item.arn, dead_letter, execution_id)
            )
        elif service in ("lambda", "states", "sns"):
            self._deliveries.append(
                Delivery(service, arn, payload, item.arn, dead_letter, execution_id)
            )
        elif service == "sqs":
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            backends.send_to_queue(arn.rsplit(":", 1)[-1], payload, group)
        elif service == "events":
            parameters = target.get("EventBridgeParameters") or {}
            _put_on_bus(
                arn,
                parameters.get("Source", "aws.scheduler"),
                parameters.get("DetailType", "Scheduled Event"),
                payload,
                item.arn,
                when,
            )
        else:
            self._undelivered(arn, item.arn, when, "Scheduler target not delivered locally")
        self._touch()
        if item.schedule_expression.startswith("at(") and (
            item.action_after_completion == "DELETE"
        ):
            backends.delete_schedule(item.group_name, item.name)
            # forgotten with it: a later schedule of the same name starts afresh
            self._last_fired.pop(item.arn, None)
            self._first_seen.pop(item.arn, None)
            for key in [k for k in self._schedule_cache if k[0] == item.arn]:
                del self._schedule_cache[key]

    # --- the HTTP API (API Gateway), Cognito users, scoring on demand ----------------------
    @property
    def http_apis(self) -> dict[str, HttpApi]:
        """API id -> the template's HTTP APIs, with their routes (:mod:`.gateway`)."""
        return dict(self._provisioned.http_apis)

    def gateway(self, api: str | None = None) -> Gateway:
        """The gateway of the template's only HTTP API, or of the one named ``api`` (its id,
        name or logical id)."""
        apis = list(self._provisioned.http_apis.values())
        if api is None and len(apis) != 1:
            raise LocalCloudError(f"the template has {len(apis)} HTTP APIs; name one")
        found = next(
            (a for a in apis if api is None or api in (a.api_id, a.name, a.logical_id)), None
        )
        if found is None:
            raise LocalCloudError(f"no HTTP API {api!r} in the template")
        if found.api_id not in self._gateways:
            self._gateways[found.api_id] = Gateway(
                found,
                functools.partial(self._gateway_invoke, found.api_id),
                now=self.clock.now,
            )
        return self._gateways[found.api_id]

    def _gateway_invoke(
        self, api_id: str, spec: FunctionSpec, event: dict[str, Any]
    ) -> tuple[bool, Any]:
        invocation = self._invoke(spec, event, source=f"apigateway:{api_id}")
        return invocation.ok, invocation.result

    def http(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        *,
        api: str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        """One request to the HTTP API as API Gateway would take it: ``target`` is the path
        and query as sent (``/api/customers/c1?lang=en``); the route's authorizer runs, then
        its function with the payload 2.0 event. Runs on the caller's thread."""
        gateway = self.gateway(api)
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        with self._phase(f"http {method} {target.split('?', 1)[0]}"):
            return gateway.handle(method, target, pairs, body, source_ip=source_ip)

    def user_pool_id(self) -> str:
        """The template's only user pool (moto's id)."""
        pools = list(self._provisioned.user_pools)
        if len(pools) != 1:
            raise LocalCloudError(f"the template has {len(pools)} user pools; expected one")
        return pools[0]

    def user_pool_client_id(self) -> str:
        clients = self.find("AWS::Cognito::UserPoolClient")
        if len(clients) != 1:
            raise LocalCloudError(f"the template has {len(clients)} user pool clients")
        return clients[0].ref

    def user_groups(self) -> list[str]:
        return sorted(r.name for r in self.find("AWS::Cognito::UserPoolGroup"))

    def add_user(self, username: str, group: str | None = None, password: str | None = None) -> str:
        """A confirmed user of the user pool (in ``group``); returns its password."""
        import secrets

        cognito = self._client("cognito-idp")
        pool = self.user_pool_id()
        if group is not None and group not in self.user_groups():
            raise ValueError(f"no group {group!r}; one of {', '.join(self.user_groups())}")
        password = password or f"Kz-{secrets.token_urlsafe(12)}-9a"
        attributes = []
        if "@" in username:
            attributes = [
                {"Name": "email", "Value": username},
                {"Name": "email_verified", "Value": "true"},
            ]
        try:
            cognito.admin_create_user(
                UserPoolId=pool,
                Username=username,
                UserAttributes=attributes,
                MessageAction="SUPPRESS",
            )
        except cognito.exceptions.UsernameExistsException:
            raise ValueError(f"user {username!r} exists already") from None
        except cognito.exceptions.InvalidParameterException as error:
            # e.g. an email address as the username of a pool with an email alias
            raise ValueError(f"user {username!r}: {error.response['Error']['Message']}") from None
        cognito.admin_set_user_password(
            UserPoolId=pool, Username=username, Password=password, Permanent=True
        )
        if group is not None:
            cognito.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=group)
        return password

    def username_for(self, group: str) -> str:
        """A user name the pool accepts for a demo user of ``group`` (an email address when
        the pool signs in with email)."""
        pool = self._client("cognito-idp").describe_user_pool(UserPoolId=self.user_pool_id())
        attributes = pool["UserPool"].get("UsernameAttributes") or []
        return f"{group}@example.com" if "email" in attributes else group

    def id_token(self, username: str, password: str) -> str:
        """What the console's sign-in gets: the user's Cognito id token (moto's)."""
        result = self._client("cognito-idp").initiate_auth(
            ClientId=self.user_pool_client_id(),
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        return str(result["AuthenticationResult"]["IdToken"])

    def scoring_state_machine(self) -> str:
        """The ARN of the daily scoring state machine (logical id ``Scoring...StateMachine``)."""
        found = [
            r
            for r in self.find("AWS::StepFunctions::StateMachine", "Scoring")
            if "StateMachine" in r.logical_id.removeprefix("Scoring")
        ]
        if len(found) != 1:
            raise LocalCloudError(f"expected one scoring state machine, found {len(found)}")
        return str(found[0].arn)

    def run_scoring(
        self, *, as_of: datetime | None = None, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Start the daily scoring job now, as its schedule does (``{"as_of": null}``) or as
        of an earlier instant, and wait (real time) for it while the runtime drives it (the
        caller's thread drains, or the serve loop does)."""
        if as_of is not None and as_of > self.clock.now():
            raise ValueError(
                f"as_of {as_of.isoformat()} is after the virtual clock "
                f"({self.clock.now().isoformat()}): advance the clock first"
            )
        sfn = self._client("stepfunctions")
        started = sfn.start_execution(
            stateMachineArn=self.scoring_state_machine(),
            # in UTC, as the CLI sends it: the state machine refuses another offset
            input=json.dumps({"as_of": as_of.astimezone(UTC).isoformat() if as_of else None}),
        )
        arn = started["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            if not any(not s.stopped for s in self._servers):  # nobody else drives: we do
                self.drain()
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        output = json.loads(described.get("output") or "null")
        return {
            "execution": arn,
            "status": described["status"],
            "as_of": (as_of or self.clock.now()).isoformat() if as_of else None,
            "output": output,
            "error": described.get("error"),
            "cause": described.get("cause"),
        }

    def describe_stack(self, handle: ServeHandle | None = None) -> dict[str, Any]:
        """What ``kizuna local serve`` prints: names of tables, buckets, buses, the user pool
        and its client, the URLs."""

        def names(rtype: str) -> list[str]:
            return sorted(r.name for r in self.find(rtype))

        data: dict[str, Any] = {
            "clock": self.clock.now().isoformat(),
            "tables": names("AWS::DynamoDB::Table"),
            "buckets": names("AWS::S3::Bucket"),
            "buses": self.bus_names(),
            "state_machines": names("AWS::StepFunctions::StateMachine"),
            "user_pools": [
                {"id": pool_id, "name": self.resources[logical].name}
                for pool_id, logical in self._provisioned.user_pools.items()
            ],
            "user_pool_clients": [
                {"id": r.ref, "name": r.name} for r in self.find("AWS::Cognito::UserPoolClient")
            ],
            "groups": self.user_groups(),
            "http_apis": [
                {"id": a.api_id, "name": a.name, "routes": [r.route_key for r in a.routes]}
                for a in self._provisioned.http_apis.values()
            ],
            "outputs": self.outputs,
        }
        if handle is not None:
            data["endpoint_url"] = handle.endpoint_url
            data["api_url"] = handle.api_url
            data["console_url"] = f"{handle.api_url}/console" if handle.api_url else None
            data["speed"] = handle.speed
        return data

    # --- serving over HTTP ---------------------------------------------------------------
    def serve(
        self,
        port: int,
        *,
        api_port: int | None = None,
        speed: float = 1.0,
        tick_seconds: float = 0.1,
        quiet: bool = True,
    ) -> ServeHandle:
        """moto's HTTP server on 127.0.0.1:``port`` with this app; the clock runs.

        With ``api_port`` (0: any free port), the template's HTTP API (and the console) on
        ``http://127.0.0.1:<api_port>/``, plus the local controls under ``/_local/``
        (:mod:`kizuna_tools.local.server`). The clock follows real time times ``speed`` (0:
        only manual moves); a background thread fires what falls due and drains every
        ``tick_seconds``. Point the AWS CLI at ``handle.endpoint_url``.
        """
        if quiet:  # werkzeug logs every request line otherwise
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        handle = ServeHandle(self, port, api_port=api_port, speed=speed, tick_seconds=tick_seconds)
        handle.start()
        self._servers.append(handle)
        return handle
