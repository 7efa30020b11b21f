"""Every change kizuna_tools.local makes to moto's (and botocore's, and urllib's) behaviour.

Each patch is one named function: it takes the running cloud (a :class:`PatchHost`),
applies itself and returns the function that undoes it. :func:`apply_all` applies them in
order while a ``LocalCloud`` is up. ``tests/integration/local/test_patches.py`` has one test
per patch, so a moto upgrade that moves what a patch relies on fails loudly.

Pinned against moto 5.2.5 (see pyproject.toml).
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import re
import threading
import time
import urllib.request
import urllib.response
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any, Protocol

from kizuna.domain.schedule_expressions import check_expression
from kizuna_tools.local.virtual_clock import Timeline, VirtualClock

Undo = Callable[[], None]


_MISSING = object()


def _swap(owner: Any, name: str, replacement: Any) -> Undo:
    """Set ``owner.name`` (a class or module attribute, own or inherited); return the undo."""
    original = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, replacement)

    def undo() -> None:
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)

    return undo


LINE_API_HOSTS: tuple[str, ...] = ("api.line.me", "api-data.line.me")
# Hosts answered in-process: LINE's Messaging API, Lambda function URLs, and (for urllib,
# which moto does not mock) Cognito's well-known JWKS of a user pool.
INTERCEPTED_HOST = re.compile(
    r"^(api(-data)?\.line\.me|[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws"
    r"|cognito-idp\.[a-z0-9-]+\.amazonaws\.com)\Z"
)
INTERCEPTED_URL = re.compile(
    r"^https://(api(-data)?\.line\.me|[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws)(:443)?(/.*)?\Z"
)


class PatchHost(Protocol):
    """What the patches need from the running cloud."""

    clock: VirtualClock
    timeline: Timeline

    def invoke_from_moto(self, function_name: str, event: Any) -> tuple[str, bool, str]:
        """Run a function for moto's Lambda (direct invoke, Step Functions task, SNS)."""
        ...

    def deliver_event_target(
        self, rule: Any, target: dict[str, Any], event: dict[str, Any]
    ) -> bool:
        """Deliver one matched event to one rule target; False leaves it to moto."""
        ...

    def invoke_async(self, function_arn: str, payload: str) -> None:
        """Queue an asynchronous invoke (Lambda's own queue: retries, on-failure)."""
        ...

    def before_call(
        self,
        service: str,
        operation: str,
        request: dict[str, Any],
        signer: Any,
        context: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]] | None:
        """Count an API call; return ``(http, parsed)`` to answer it without moto."""
        ...

    def after_call(
        self,
        service: str,
        operation: str,
        http: Any,
        parsed: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        """See a call's response (e.g. to keep an email's full request); may turn it into an
        error (an injected fault: set ``http.status_code`` and ``parsed["Error"]``) or raise."""
        ...

    def interpreter_client(self, client: Any) -> None:
        """A client the Step Functions interpreter made (its calls are the app's)."""
        ...

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer an HTTP request to LINE (recorded) or to a Lambda function URL (invoked)."""
        ...

    def intercepts(self, host: str) -> bool:
        """Whether HTTPS to ``host`` (another than LINE's and AWS's) is answered in-process."""
        ...


# --- Step Functions: Wait states and Retry intervals on the virtual clock ----------------
def _wait_key(env: Any) -> tuple[str, ...]:
    try:
        data = env.states.context_object.context_object_data
        key = [str(data["Execution"]["Id"]), str(data.get("State", {}).get("Name", ""))]
        index = data.get("Map", {}).get("Item", {}).get("Index")
        if index is not None:
            key.append(f"{int(index):09d}")
        return tuple(key)
    except (AttributeError, KeyError, TypeError, ValueError):
        return ("", threading.current_thread().name)


def parse_asl_timestamp(text: Any) -> datetime | None:
    """An ASL ``Timestamp``: RFC 3339 with ``Z`` or an offset (moto accepts only ``Z``)."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def patch_wait_states(host: PatchHost) -> Undo:
    """``Wait`` (Seconds, SecondsPath, Timestamp, TimestampPath) blocks on the virtual clock.

    moto's ``WaitFunction._eval_body`` computes seconds and sleeps in
    ``_wait_interval`` (real time; Timestamp is read against the naive local clock). The
    patched body computes the virtual due time and parks the execution thread on the
    runtime's timeline until ``advance()`` reaches it. Timestamps may carry an offset
    (``+09:00``), as ASL allows; moto's parser accepts only ``Z``.
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import (
        Timestamp,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    def _eval_body(self: Any, env: Any) -> None:
        if isinstance(self, Timestamp):  # Timestamp and TimestampPath
            self.string.eval(env=env)
            text = env.stack.pop()
            due = parse_asl_timestamp(text)
            if due is None:
                raise FailureEventException(self._create_failure_event(env, text))
        else:  # Seconds, SecondsPath (validated by moto)
            due = host.clock.now() + timedelta(seconds=int(self._get_wait_seconds(env)))
        host.timeline.wait_until(due, _wait_key(env), env.is_running)

    undo_eval = _swap(WaitFunction, "_eval_body", _eval_body)
    # moto also rejects a literal Timestamp with an offset when it parses the definition.
    undo_parse = _swap(Timestamp, "_from_timestamp_string", staticmethod(parse_asl_timestamp))

    def undo() -> None:
        undo_parse()
        undo_eval()

    return undo


class _VirtualSleep:
    """Stands in for the ``time`` module inside moto's retrier: ``sleep`` is virtual."""

    def __init__(self, host: PatchHost, real: Any) -> None:
        self._host = host
        self._real = real

    def sleep(self, seconds: float) -> None:
        due = self._host.clock.now() + timedelta(seconds=float(seconds))
        self._host.timeline.wait_until(due, ("retry", threading.current_thread().name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch_retry_intervals(host: PatchHost) -> Undo:
    """``Retry`` intervals (IntervalSeconds × BackoffRate) pass on the virtual clock.

    moto's ``RetrierDecl._eval_body`` calls ``time.sleep(interval)``; the module's ``time``
    is replaced by a shim whose ``sleep`` parks the thread on the timeline.
    """
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    return _swap(retrier_decl, "time", _VirtualSleep(host, retrier_decl.__dict__["time"]))


class _VirtualDatetime:
    """Stands in for the ``datetime`` module inside moto's Step Functions: ``datetime.now``
    is the virtual clock's."""

    def __init__(self, host: PatchHost, real: Any) -> None:
        clock = host.clock

        class VirtualNow(real.datetime):  # type: ignore[misc]
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                at = clock.now()
                return at.astimezone(tz) if tz is not None else at.replace(tzinfo=None)

        self.datetime = VirtualNow
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch_execution_dates(host: PatchHost) -> Undo:
    """An execution's ``startDate`` and ``stopDate`` (a stopped one's too, and a Map Run's)
    are virtual time.

    moto stamps them with ``datetime.datetime.now()``: wall time, while the handlers, the
    CLI in-process and everything else read the virtual clock. ``kizuna campaigns close``
    (which waits 15 minutes after the execution's ``stopDate``) and the API's
    ``execution_ended_at`` read those dates.
    """
    from moto.stepfunctions import models as base_models
    from moto.stepfunctions.parser import models
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (  # noqa: E501
        map_run_record,
    )
    from moto.stepfunctions.parser.backend import execution

    undos = [
        _swap(module, "datetime", _VirtualDatetime(host, module.__dict__["datetime"]))
        for module in (models, execution, map_run_record)
    ]
    # StopExecution (ABORTED) stamps its stopDate with moto's naive UTC ``utcnow``
    undos.append(_swap(base_models, "utcnow", lambda: host.clock.now().replace(tzinfo=None)))

    def undo() -> None:
        for each in reversed(undos):
            each()

    return undo


def patch_execution_names(host: PatchHost) -> Undo:
    """``StartExecution`` without a name gets a UUID, as on AWS.

    moto's parser backend uses ``None`` as the name, so the second unnamed execution of a
    state machine fails with ``ExecutionAlreadyExists`` (``...:execution:<machine>:None``).
    """
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.__dict__["start_execution"]

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        return original(
            self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )

    return _swap(StepFunctionsParserBackend, "start_execution", start_execution)


class _CachingBoto3:
    """Stands in for ``boto3`` inside moto's Step Functions: one client per service."""

    def __init__(self, real: Any, host: PatchHost) -> None:
        self._real = real
        self._host = host
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        key = (
            args,
            kwargs.get("service_name"),
            kwargs.get("region_name"),
            kwargs.get("endpoint_url"),
            kwargs.get("aws_access_key_id"),
        )
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._real.client(*args, **kwargs)
                self._host.interpreter_client(self._clients[key])
            return self._clients[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch_sfn_client_cache(host: PatchHost) -> Undo:
    """moto's Step Functions tasks reuse one boto3 client per service.

    ``boto_client_for`` builds a new client for every task state it runs (~5 ms each, most
    of a Lambda task's cost); botocore clients are thread-safe, so one per service, region
    and endpoint serves every execution thread.
    """
    from moto.stepfunctions.parser.asl.utils import boto_client

    return _swap(boto_client, "boto3", _CachingBoto3(boto_client.__dict__["boto3"], host))


def _touch_heap_keys(root: Any) -> None:
    """Give every evaluation component of a parsed program its ``heap_key`` now.

    moto's components key per-execution data in the execution's own heap by a uuid they
    draw lazily; drawn once here, before any execution thread shares the program, two
    threads can never draw two different keys for the same component.
    """
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, EvalComponent):
            _ = obj.heap_key
        if isinstance(obj, list | tuple | set | frozenset):
            pending.extend(obj)
        elif isinstance(obj, dict):
            pending.extend(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("moto.stepfunctions"):
            pending.extend(vars(obj).values())


def patch_asl_parse_cache(host: PatchHost) -> Undo:
    """moto parses a state machine's definition again for every execution it starts.

    The ANTLR parser is pure Python: measured as a fifth of the local runtime's CPU (~0.3 s a
    journey). A parsed program is immutable once built (evaluation state lives in each
    execution's environment, keyed by the components' heap keys, drawn here up front), so
    every execution of the same definition shares one parse.
    """
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.backend import execution_worker

    original = asl_parser.AmazonStateLanguageParser.parse
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def cached_parse(definition: str) -> Any:
        with lock:
            if definition not in cache:
                parsed = original(definition)
                _touch_heap_keys(parsed[0])
                cache[definition] = parsed
            return cache[definition]

    class CachedParser(asl_parser.AmazonStateLanguageParser):
        parse = staticmethod(cached_parse)

    CachedParser.cache = cache  # type: ignore[attr-defined]
    return _swap(execution_worker, "AmazonStateLanguageParser", CachedParser)


# --- Lambda: run the handler in-process --------------------------------------------------
def patch_lambda_invoke(host: PatchHost) -> Undo:
    """moto's Lambda runs the function's handler in-process instead of in Docker.

    ``LambdaFunction._invoke_lambda(event)`` returns ``(payload, errored, logs)``; direct
    invokes, Step Functions Lambda tasks and SNS subscriptions all go through it.

    An asynchronous invoke (``InvocationType="Event"``, e.g. ``kizuna dlq redrive`` replaying
    an on-failure record) is queued as Lambda does, answered 202 without a function error,
    and run later with the function's async retries and on-failure destination (moto would
    run it at once and report its error to the caller, which AWS never does).
    """
    from moto.awslambda.models import LambdaFunction

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return host.invoke_from_moto(self.function_name, event)

    original_invoke = LambdaFunction.invoke

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> Any:
        if str(request_headers.get("x-amz-invocation-type", "")).lower() == "event":
            host.invoke_async(self.function_arn, body or "{}")
            return b""
        return original_invoke(self, body, request_headers, response_headers)

    undo_invoke = _swap(LambdaFunction, "invoke", invoke)
    undo_run = _swap(LambdaFunction, "_invoke_lambda", _invoke_lambda)

    def undo() -> None:
        undo_run()
        undo_invoke()

    return undo


def patch_lambda_task_client_errors(host: PatchHost) -> Undo:
    """A Lambda task whose ``Invoke`` fails on the client side (a read timeout, a dropped
    connection) fails with ``Lambda.SdkClientException``, as on AWS, which a ``Retry``
    can match.

    moto's parser turns any exception that is not a ``ClientError`` into ``States.Runtime``,
    which no ``Retry`` or ``Catch`` can match: an injected ``timeout`` on the interpreter's
    Invoke would fail the execution outright, which AWS does not do.
    """
    from botocore.exceptions import BotoCoreError, ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: E501
        StateTaskServiceLambda,
    )

    original = StateTaskServiceLambda.__dict__["_from_error"]

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, BotoCoreError):
            ex = ClientError(
                {
                    "Error": {"Code": "SdkClientException", "Message": str(ex)},
                    "ResponseMetadata": {"HTTPStatusCode": 0, "RequestId": ""},
                },
                "Invoke",
            )
        return original(self, env, ex)

    return _swap(StateTaskServiceLambda, "_from_error", _from_error)


# --- DynamoDB --------------------------------------------------------------------------------
DYNAMODB_ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def patch_dynamodb_item_responses(host: PatchHost) -> Undo:
    """DynamoDB item responses are written with ``json.dumps`` (same JSON, ~20x faster).

    moto's generic response serializer walks the operation's output shape for every
    attribute of every item; for item operations (GetItem, Query, BatchGetItem...) the
    result is already DynamoDB's wire JSON (``DynamoResult`` converts it), so it is dumped
    as is. Anything that does not dump cleanly falls back to moto's serializer.
    """
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoResult

    serialize = ActionResult.__dict__["execute_result"]

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name in DYNAMODB_ITEM_OPERATIONS:
            try:
                body = json.dumps(self.result, separators=(",", ":"))
            except (TypeError, ValueError):
                pass
            else:
                return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return serialize(self, context)

    return _swap(DynamoResult, "execute_result", execute_result)


def patch_dynamodb_item_sizes(host: PatchHost) -> Undo:
    """Items and attribute values are measured without copying them.

    moto measures sizes for the 400 KB item limit (every attribute put, against all the
    others), for the 1 MB page of a Query or Scan (every item, twice), and its measure
    rebuilt each nested value at every level: a tenth of the demo's CPU time. The numbers are
    the same, so limits and pages are too.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.utilities import bytesize

    def measure(value: Any) -> int:
        """``DynamoType.size()``: the same number, without copying the value (moto rebuilds
        each nested map and list, ``DynamoType(v)``, at every level to measure it)."""
        kind, inner = value.type, value.value
        if kind == "N":
            return len(str(inner))
        if kind == "NS":
            return sum(len(str(v)) for v in inner)
        if kind in ("SS", "BS"):
            return sum(1 if isinstance(v, bool) else bytesize(v) for v in inner)
        if kind == "L":
            return sum(measure(v if type(v) is DynamoType else DynamoType(v)) for v in inner)
        if kind == "M":
            return sum(
                bytesize(k) + measure(v if type(v) is DynamoType else DynamoType(v))
                for k, v in inner.items()
            )
        if isinstance(inner, bool):
            return 1
        return bytesize(inner)

    def value_size(self: Any) -> int:
        return measure(self)

    def item_size(self: Any) -> int:
        return sum(bytesize(key) + measure(value) for key, value in self.attrs.items())

    undo_value = _swap(DynamoType, "size", value_size)
    undo_item = _swap(Item, "size", item_size)

    def undo() -> None:
        undo_item()
        undo_value()

    return undo


# A DynamoDB expression's names: a #placeholder or a bare name, and what follows it.
_EXPRESSION_TOKEN = re.compile(r"(?P<name>#[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\S)")
_EXPRESSION_WORDS = frozenset({"and", "or", "not", "between", "in"})


def top_level_names(expression: str, placeholders: dict[str, str]) -> set[str]:
    """The top-level attributes a condition or filter expression names (``#n`` resolved
    through ``placeholders``; a function name, a keyword, ``:value`` and a nested path's
    later elements are not attributes of the item)."""
    tokens = [(m.group("name"), m.group("other")) for m in _EXPRESSION_TOKEN.finditer(expression)]
    names: set[str] = set()
    for index, (name, _) in enumerate(tokens):
        if name is None:
            continue
        before = tokens[index - 1][1] if index else None
        after = tokens[index + 1][1] if index + 1 < len(tokens) else None
        if before in (".", ":") or after == "(" or name.lower() in _EXPRESSION_WORDS:
            continue
        names.add(placeholders.get(name, name) if name.startswith("#") else name)
    return names


def patch_dynamodb_key_filters(host: PatchHost | None) -> Undo:
    """A Query whose FilterExpression names a key attribute is refused, as AWS refuses it.

    DynamoDB: "A filter expression cannot contain partition key or sort key attributes";
    Query answers ``ValidationException`` ("Filter Expression can only contain non-primary
    key attributes"). moto 5.2.5 runs such a filter. The keys are those of the queried table
    or index. Applied to every test on moto too (``tests/conftest.py``), not only to the
    local runtime; ``host`` is not used.
    """
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.__dict__["query"]

    def query(self: Any) -> Any:
        body = self.body
        expression = body.get("FilterExpression")
        if expression:
            schema = self.dynamodb_backend.get_schema(
                table_name=body["TableName"], index_name=body.get("IndexName")
            )
            keys = {k["AttributeName"] for k in schema}
            named = top_level_names(expression, body.get("ExpressionAttributeNames", {}))
            for key in sorted(named & keys):
                raise MockValidationException(
                    "Filter Expression can only contain non-primary key attributes: "
                    f"Primary key attribute: {key}"
                )
        return original(self)

    return _swap(DynamoHandler, "query", query)


def patch_dynamodb_batch_keys(host: PatchHost | None) -> Undo:
    """A BatchWriteItem naming one item's key twice is refused, as AWS refuses it.

    DynamoDB: "Provided list of item keys contains duplicates" when two requests of one call
    (puts or deletes) name the same primary key; moto 5.2.5 compares whole items, so two puts
    of one key with different attributes pass. Applied to every test on moto too
    (``tests/conftest.py``); ``host`` is not used.
    """
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.__dict__["batch_write_item"]

    def batch_write_item(self: Any) -> Any:
        for table_name, requests in (self.body.get("RequestItems") or {}).items():
            schema = self.dynamodb_backend.get_schema(table_name=table_name, index_name=None)
            names = [k["AttributeName"] for k in schema]
            seen: set[str] = set()
            for request in requests:
                found = (request.get("PutRequest") or {}).get("Item") or (
                    request.get("DeleteRequest") or {}
                ).get("Key")
                if not isinstance(found, dict):
                    continue
                key = json.dumps([found.get(n) for n in names], sort_keys=True)
                if key in seen:
                    raise MockValidationException("Provided list of item keys contains duplicates")
                seen.add(key)
        return original(self)

    return _swap(DynamoHandler, "batch_write_item", batch_write_item)


# DynamoDB's rules for what a request may hold, which moto 5.2.5 does not apply.
MAX_BATCH_WRITE_REQUESTS = 25
# "Nested attributes up to 32 levels deep", the item's own attribute the first: 31 maps or
# lists within one another at most.
MAX_NESTED_CONTAINERS = 31
_PLACEHOLDER = re.compile(r"[:#][A-Za-z0-9_]+")
# Operations whose unused placeholders moto 5.2.5 takes (it checks UpdateItem's, GetItem's and
# BatchGetItem's itself).
_PLACEHOLDER_CHECKED = (
    "put_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
)


def nesting_levels(value: Any) -> int:
    """How deep a wire-format attribute value (``{"M": ...}``, ``{"L": [...]}``) nests: a
    scalar is 0, a map or list one more than its deepest element."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "M" and isinstance(inner, dict):
            return 1 + max((nesting_levels(v) for v in inner.values()), default=0)
        if kind == "L" and isinstance(inner, list):
            return 1 + max((nesting_levels(v) for v in inner), default=0)
    return 0


def write_problem(table: Any, attrs: dict[str, Any]) -> str | None:
    """Why DynamoDB refuses to store ``attrs`` (wire format) in ``table``, or None: a
    secondary index's key attribute of another type than the table defines for it, or a
    value nested more than 32 levels deep (the attribute itself the first)."""
    defined = {a["AttributeName"]: a["AttributeType"] for a in table.attr}
    for index in [*table.global_indexes, *table.indexes]:
        for key in index.schema:
            name = key["AttributeName"]
            value = attrs.get(name)
            if not isinstance(value, dict) or len(value) != 1:
                continue
            (actual,) = value
            expected = defined.get(name)
            if expected is not None and actual != expected:
                return (
                    "One or more parameter values were invalid: Type mismatch for Index Key "
                    f"{name} Expected: {expected} Actual: {actual} IndexName: {index.name}"
                )
    for value in attrs.values():
        if nesting_levels(value) > MAX_NESTED_CONTAINERS:
            return "Nesting Levels have exceeded supported limits"
    return None


_EXPRESSION_FIELDS = (
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
    "ConditionExpression",
    "UpdateExpression",
)


def unused_placeholders(request: dict[str, Any]) -> list[str]:
    """The ``:value`` and ``#name`` placeholders a request (or a transaction's action)
    defines but none of its expressions uses."""
    used: set[str] = set()
    for field in _EXPRESSION_FIELDS:
        used.update(_PLACEHOLDER.findall(request.get(field) or ""))
    defined = [
        *(request.get("ExpressionAttributeValues") or {}),
        *(request.get("ExpressionAttributeNames") or {}),
    ]
    return [name for name in defined if name not in used]


def patch_dynamodb_request_rules(host: PatchHost | None) -> Undo:
    """Requests DynamoDB refuses are refused here too.

    moto 5.2.5 accepts, where DynamoDB answers ``ValidationException``: a BatchWriteItem of
    more than 25 requests; an expression value or name none of the request's expressions
    uses, in a PutItem, DeleteItem, Query, Scan or a transaction's action (moto checks
    unused values in UpdateItem only, unused names in some operations); an item whose
    secondary-index key attribute has another type than the table's definition ("Type
    mismatch for Index Key"; moto checks an update's, not a put's); an attribute nested more
    than 32 levels (32 maps or lists within one another). Applied to every test on moto too
    (``tests/conftest.py``); ``host`` is not used.
    """
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    original_batch = DynamoHandler.__dict__["batch_write_item"]
    original_put = Table.__dict__["put_item"]

    def batch_write_item(self: Any) -> Any:
        requests = sum(len(r) for r in (self.body.get("RequestItems") or {}).values())
        if requests > MAX_BATCH_WRITE_REQUESTS:
            raise MockValidationException(
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Map value must satisfy constraint: [Member must have length less "
                f"than or equal to {MAX_BATCH_WRITE_REQUESTS}]"
            )
        return original_batch(self)

    def refuse_unused(request: dict[str, Any]) -> None:
        for name in unused_placeholders(request):
            kind = "Values" if name.startswith(":") else "Names"
            raise MockValidationException(
                f"Value provided in ExpressionAttribute{kind} unused in expressions: "
                f"keys: {{{name}}}"
            )

    def checked(operation: str) -> Any:
        original = DynamoHandler.__dict__[operation]

        def handler(self: Any) -> Any:
            if operation.startswith("transact_"):
                for entry in self.body.get("TransactItems") or []:
                    for action in entry.values():
                        refuse_unused(action if isinstance(action, dict) else {})
            else:
                refuse_unused(self.body)
            return original(self)

        return handler

    def put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        problem = write_problem(self, item_attrs)
        if problem:
            raise MockValidationException(problem)
        return original_put(self, item_attrs, *args, **kwargs)

    undos = [
        _swap(DynamoHandler, "batch_write_item", batch_write_item),
        *(_swap(DynamoHandler, op, checked(op)) for op in _PLACEHOLDER_CHECKED),
        _swap(Table, "put_item", put_item),
    ]

    def undo() -> None:
        for one in reversed(undos):
            one()

    return undo


def patch_moto_parse_caches(host: PatchHost) -> Undo:
    """Two things moto works out again on every call are worked out once.

    - Each request: the names of its response class's methods (``inspect.getmembers`` on
      the class, to find the action's method): kept per class, which does not change.
    - Each JSONPath in a state machine (``$.cohort``, ``$.wait.at``...), parsed again by
      ``jsonpath_ng``'s parser each time a state reads it (its LALR tables too): kept per
      path. A parsed path is only read (``find``), never changed.
    """
    import functools

    from jsonpath_ng.ext.parser import parse as parse_path
    from moto.core import responses
    from moto.core.utils import method_names_from_class
    from moto.stepfunctions.parser.asl.utils import json_path

    names = functools.lru_cache(maxsize=None)(method_names_from_class)
    parse = functools.lru_cache(maxsize=4096)(parse_path)
    undo_names = _swap(responses, "method_names_from_class", names)
    undo_parse = _swap(json_path, "parse", parse)

    def undo() -> None:
        undo_parse()
        undo_names()

    return undo


_SCAN_SCOPE = threading.local()


def patch_dynamodb_projected_scans(host: PatchHost) -> Undo:
    """A Scan with a projection (and no index) does not deep-copy each item it returns.

    moto's ``Table.scan`` copies every item it keeps, then builds a new item of the
    projected attributes from the copy (``Item.project`` converts it to plain JSON and back):
    the copy is never used again. The scoring job's daily scans project; the copies were a
    twentieth of the demo's CPU time. Scans without a projection and index scans (moto trims
    the copy to the index's attributes) still copy.
    """
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    original_scan = Table.__dict__["scan"]
    original_copy = Item.__dict__["__deepcopy__"]
    signature = inspect.signature(original_scan)

    def scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        shared = bool(bound.get("projection_expression")) and not bound.get("index_name")
        previous = getattr(_SCAN_SCOPE, "shared", False)
        _SCAN_SCOPE.shared = shared
        try:
            return original_scan(self, *args, **kwargs)
        finally:
            _SCAN_SCOPE.shared = previous

    def deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(_SCAN_SCOPE, "shared", False):
            return self  # read only: projected into a new item right after
        return original_copy(self, memo)

    undo_scan = _swap(Table, "scan", scan)
    undo_copy = _swap(Item, "__deepcopy__", deepcopy)

    def undo() -> None:
        undo_copy()
        undo_scan()

    return undo


_QUERY_SCOPE = threading.local()
# (the attribute compared, or None for the table's own sort key; an index query?; the
# comparison; its operands)
RangeTest = tuple[str | None, bool, str, list[Any]]


def _range_test(table: Any, index_name: str | None, bound: dict[str, Any]) -> RangeTest | None:
    """The sort-key condition moto's ``Table.query`` applies to each candidate, or None when
    there is none (or the query takes a path this patch leaves to moto: a legacy
    QueryFilter, a condition on several sort-key attributes)."""
    comparison = bound.get("range_comparison")
    conditions = bound.get("range_key_conditions") or []
    if not comparison or bound.get("filter_kwargs") or len(conditions) > 1:
        return None
    attribute: str | None = conditions[-1][0] if conditions else None
    if attribute is None and index_name:
        index = {i.name: i for i in table.all_indexes()}.get(index_name)
        ranges = [k for k in index.schema if k["KeyType"] == "RANGE"] if index else []
        if not ranges:
            return None  # moto raises its own error
        attribute = ranges[0]["AttributeName"]
    return attribute, bool(index_name), comparison, list(bound.get("range_objs") or [])


def _in_range(items: list[Any]) -> list[Any]:
    """The candidates that pass the query's sort-key condition, tested exactly as moto's
    ``Table.query`` tests them; before, moto measured the size of every item of the
    partition (a few ms for a large one) only to drop most of them."""
    test: RangeTest | None = getattr(_QUERY_SCOPE, "range", None)
    if test is None:
        return items
    attribute, indexed, comparison, operands = test
    kept = []
    for item in items:
        found = item.attrs.get(attribute) if attribute else None
        if found is not None:
            if found.compare(comparison, operands):
                kept.append(item)
        elif not indexed and (
            item.range_key is None or item.range_key.compare(comparison, operands)
        ):
            kept.append(item)
    return kept


def patch_dynamodb_query_candidates(host: PatchHost) -> Undo:
    """Query reads only the items it can match instead of sorting the whole table.

    moto's ``Table.query`` starts from ``all_items()``, which sorts every item of the table
    (O(n log n) per query, with costly key comparisons). During a query this patch makes
    ``all_items`` return, unsorted, only the items of the queried partition (table queries)
    or the items that carry the index's keys with the queried partition value (index queries;
    moto filters and sorts the candidates itself afterwards). Results are identical; scans
    and everything else keep moto's sorted ``all_items``.

    Index candidates come from one pass over the table, grouped by the index's partition
    value and kept until the next write to any table (a generation counter that every
    writing method of moto's DynamoDB backend and table moves, before and after it runs):
    the reconcile-sends sweep queries 16 shards of a sparse index every 30 simulated
    minutes, which had been 16 passes over the activity table (a quarter of the demo's
    CPU time), and is now one. The candidates are also tested against the query's sort-key
    condition (:func:`_in_range`, moto's own test) before moto measures each one's size.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original_all_items = Table.__dict__["all_items"]
    original_query = Table.__dict__["query"]
    generation = [0]
    # table -> index keys -> (generation, {partition value: items})
    grouped: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], tuple[int, Any]]] = (
        weakref.WeakKeyDictionary()
    )

    def index_groups(table: Any, names: tuple[str, ...]) -> dict[Any, list[Any]]:
        per_table = grouped.setdefault(table, {})
        cached = per_table.get(names)
        if cached is not None and cached[0] == generation[0]:
            groups: dict[Any, list[Any]] = cached[1]
            return groups
        built = generation[0]
        groups = {}
        partition = names[0]
        for bucket in table.items.values():
            for item in bucket.values() if table.range_key_attr else [bucket]:
                attrs = item.attrs
                if all(name in attrs for name in names):
                    value = attrs[partition]
                    groups.setdefault((value.type, value.value), []).append(item)
        if built == generation[0]:
            per_table[names] = (built, groups)
        return groups

    def all_items(table: Any) -> Any:
        if getattr(_QUERY_SCOPE, "table", None) is not table:
            return original_all_items(table)
        return _in_range(_candidates(table))

    def _candidates(self: Any) -> list[Any]:
        hash_key = _QUERY_SCOPE.hash_key
        if hash_key is not None:
            bucket = self.items.get(hash_key)
            if bucket is None:
                return []
            return list(bucket.values()) if self.range_key_attr else [bucket]
        # an index query: keep the items that carry every key attribute of the index with
        # the queried partition value (a sparse index holds only those); moto re-checks
        required: list[tuple[str, Any]] = _QUERY_SCOPE.index_keys
        if required and required[0][1] is not None and all(e is None for _, e in required[1:]):
            try:
                groups = index_groups(self, tuple(name for name, _ in required))
                expected = required[0][1]
                return list(groups.get((expected.type, expected.value), ()))
            except TypeError:  # a partition value that cannot be a dict key: the slow way
                pass
        out: list[Any] = []
        for bucket in self.items.values():
            for item in bucket.values() if self.range_key_attr else [bucket]:
                attrs = item.attrs
                for name, expected in required:
                    found = attrs.get(name)
                    if found is None or (
                        expected is not None
                        and (found.type != expected.type or found.value != expected.value)
                    ):
                        break
                else:
                    out.append(item)
        return out

    signature = inspect.signature(original_query)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, hash_key, *args, **kwargs).arguments
        index_name = bound.get("index_name")
        previous = (
            getattr(_QUERY_SCOPE, "table", None),
            getattr(_QUERY_SCOPE, "hash_key", None),
            getattr(_QUERY_SCOPE, "index_keys", None),
            getattr(_QUERY_SCOPE, "range", None),
        )
        _QUERY_SCOPE.table = self
        _QUERY_SCOPE.hash_key = None if index_name else hash_key
        _QUERY_SCOPE.index_keys = []
        if index_name:
            index = {i.name: i for i in self.all_indexes()}.get(index_name)
            if index is not None:
                conditions = dict(bound.get("hash_key_conditions") or [])
                for key in index.schema:
                    name = key["AttributeName"]
                    if key["KeyType"] == "HASH":
                        _QUERY_SCOPE.index_keys.append(
                            (name, conditions.get(name, hash_key if len(conditions) < 2 else None))
                        )
                    else:
                        _QUERY_SCOPE.index_keys.append((name, None))
        _QUERY_SCOPE.range = _range_test(self, index_name, bound)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            (
                _QUERY_SCOPE.table,
                _QUERY_SCOPE.hash_key,
                _QUERY_SCOPE.index_keys,
                _QUERY_SCOPE.range,
            ) = previous

    def counted(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            generation[0] += 1
            try:
                return original(*args, **kwargs)
            finally:
                generation[0] += 1

        return write

    undos = [_swap(Table, "all_items", all_items), _swap(Table, "query", query)]
    for owner, names in (
        (Table, ("put_item", "delete_item")),
        (
            DynamoDBBackend,
            (
                "create_table",
                "delete_table",
                "put_item",
                "update_item",
                "delete_item",
                "transact_write_items",
                "execute_statement",
                "execute_transaction",
                "batch_execute_statement",
                "import_table",
                "restore_table_from_backup",
                "restore_table_to_point_in_time",
            ),
        ),
    ):
        for name in names:
            undos.append(_swap(owner, name, counted(getattr(owner, name))))

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


_TRANSACTION = threading.local()


class _TableBackupShim:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: within a transaction
    a table's "backup" is the table itself (no copy); anything else is copied as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_TRANSACTION, "active", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def patch_dynamodb_transactions(host: PatchHost) -> Undo:
    """TransactWriteItems backs up the items it touches, not whole tables.

    moto's ``transact_write_items`` deep-copies every table named in the transaction, once
    per action, to roll back on a cancellation: O(table size × actions) per call, and the
    campaign batch's claims (transactions of up to 100 actions on the activity table) made a
    5,000-customer campaign use 24 GB and minutes of CPU. This patch keeps a copy of each
    touched item as it was, lets moto run with the table "backups" made free, and on a
    cancellation puts every touched item back as it was (or deletes it if it was absent).
    The outcome, the errors and the cancellation reasons are moto's own.
    """
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.__dict__["transact_write_items"]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: list[tuple[str, dict[str, Any], Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            if "Item" in op:
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs.get(table.range_key_attr)
            else:
                key = op.get("Key") or {}
            try:
                before = self.get_item(table.name, key)
            except Exception:  # noqa: S112 - moto raises the key error itself, in order
                continue
            touched.append((table.name, key, copy.deepcopy(before)))
        _TRANSACTION.active = True
        try:
            original(self, transact_items)
        except Exception:
            for table_name, key, before in reversed(touched):
                if before is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before.to_json()["Attributes"])
            raise
        finally:
            _TRANSACTION.active = False

    undo_copy = _swap(dynamodb_models, "copy", _TableBackupShim())
    undo_transact = _swap(DynamoDBBackend, "transact_write_items", transact_write_items)

    def undo() -> None:
        undo_transact()
        undo_copy()

    return undo


# --- EventBridge Scheduler ----------------------------------------------------------------
START_DATE_GRACE = timedelta(minutes=5)


def scheduler_problem(
    expression: str, timezone: str | None, start_date: Any, now: datetime
) -> str | None:
    """Why EventBridge Scheduler refuses a schedule, or None: an expression it does not read
    (a cron with both day fields, a field out of range...), or a recurring schedule's
    StartDate more than 5 minutes before ``now``."""
    try:
        check_expression(expression, timezone or "UTC")
    except (ValueError, KeyError):  # KeyError: an unknown time zone
        return f"Invalid Schedule Expression {expression}"
    if start_date is not None and not expression.startswith("at("):
        start = datetime.fromtimestamp(float(start_date), UTC)
        if start < now - START_DATE_GRACE:
            return "The StartDate you specify cannot be earlier than 5 minutes ago."
    return None


def patch_scheduler_rules(host: PatchHost) -> Undo:
    """CreateSchedule and UpdateSchedule refuse what Scheduler refuses, on the virtual clock.

    Scheduler answers ``ValidationException`` to an expression it cannot read ("Invalid
    Schedule Expression") and to a rate or cron schedule whose StartDate is more than 5
    minutes past ("The StartDate you specify cannot be earlier than 5 minutes ago.").
    moto 5.2.5 takes any expression, checks the StartDate on create only, only for an
    expression with a ``*``, and against the wall clock, not the runtime's.
    """
    from moto.scheduler.exceptions import ValidationException
    from moto.scheduler.models import Schedule

    original_update = Schedule.__dict__["update"]

    def refuse(expression: str, timezone: str | None, start_date: Any) -> None:
        problem = scheduler_problem(expression, timezone, start_date, host.clock.now())
        if problem:
            raise ValidationException(message=problem)

    def validate_start_date(self: Any, start_date: Any) -> Any:
        refuse(self.schedule_expression, self.schedule_expression_timezone, start_date)
        return start_date

    def update(self: Any, **fields: Any) -> None:
        refuse(
            fields["schedule_expression"],
            fields.get("schedule_expression_timezone"),
            fields.get("start_date"),
        )
        original_update(self, **fields)

    undo_start = _swap(Schedule, "_validate_start_date", validate_start_date)
    undo_update = _swap(Schedule, "update", update)

    def undo() -> None:
        undo_update()
        undo_start()

    return undo


# --- Cognito -------------------------------------------------------------------------------
def patch_cognito_alias_usernames(host: PatchHost | None) -> Undo:
    """AdminCreateUser refuses a username in the form of an alias of the pool, as Cognito does.

    A pool that signs in with a username and an email (or phone) alias (``AliasAttributes``;
    Kizuna's console pool, ``SignInAliases(username=True, email=True)``) answers
    ``InvalidParameterException`` to a username in email (phone) form: "Username cannot be
    of email format, since user pool is configured for email alias." moto 5.2.5 creates
    the user, so ``kizuna local user add anna@example.com`` worked locally and its
    ``aws cognito-idp admin-create-user`` twin failed on AWS.
    """
    from moto.cognitoidp.exceptions import InvalidParameterException
    from moto.cognitoidp.models import CognitoIdpBackend
    from moto.cognitoidp.utils import validate_username_format

    original = CognitoIdpBackend.__dict__["admin_create_user"]

    def admin_create_user(self: Any, user_pool_id: str, username: str, *args: Any) -> Any:
        pool = self.describe_user_pool(user_pool_id)
        for alias in pool.extended_config.get("AliasAttributes") or []:
            if alias in ("email", "phone_number") and validate_username_format(
                username, _format=alias
            ):
                kind = "email" if alias == "email" else "phone number"
                raise InvalidParameterException(
                    f"Username cannot be of {kind} format, since user pool is configured "
                    f"for {kind} alias."
                )
        return original(self, user_pool_id, username, *args)

    return _swap(CognitoIdpBackend, "admin_create_user", admin_create_user)


# --- SQS -----------------------------------------------------------------------------------
def patch_sqs_message_clock(host: PatchHost) -> Undo:
    """SQS visibility checks read the wall clock cheaply (same values, ~10x faster).

    moto's ``Message.visible`` and ``Message.delayed`` build two datetimes per call
    (``unix_time_millis``), and every send (queue attributes) and receive scans every
    message of the queue: a queue of a few thousand messages made each call cost
    milliseconds. The patched properties compare against ``time.time()`` instead.
    """
    from moto.sqs.models import Message

    def visible(self: Any) -> bool:
        return bool(time.time() * 1000 > self.visible_at)

    def delayed(self: Any) -> bool:
        return bool(time.time() * 1000 < self.delayed_until)

    undo_visible = _swap(Message, "visible", property(visible))
    undo_delayed = _swap(Message, "delayed", property(delayed))

    def undo() -> None:
        undo_delayed()
        undo_visible()

    return undo


def patch_sqs_retention_check(host: PatchHost) -> Undo:
    """Receiving reads a queue's retention period directly (same answer, O(1)).

    moto's ``SQSBackend.is_message_valid_based_on_retention_period`` runs for every message
    received and asks for the queue's attributes, which counts every message of the queue
    three times: receiving all of a queue of n messages cost O(n²).
    """
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > time.time())

    return _swap(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )


# SQS's bound on one SendMessageBatch's messages together: 1 MiB (as on one message, below
# the queue's MaximumMessageSize: 1 MiB by default since August 2025).
SQS_BATCH_LIMIT_BYTES = 1024 * 1024


def sqs_message_size(body: str, attributes: dict[str, Any] | None) -> int:
    """A message's size as SQS counts it: the body's UTF-8 bytes and, for each attribute,
    the bytes of its name, data type and value."""
    size = len(body.encode())
    for name, attribute in (attributes or {}).items():
        size += len(name.encode())
        fields = {k.lower().replace("_", ""): v for k, v in dict(attribute).items()}
        size += len(str(fields.get("datatype") or "").encode())
        value = fields.get("stringvalue")
        if value is None:
            value = fields.get("binaryvalue") or b""
        size += len(value) if isinstance(value, bytes) else len(str(value).encode())
    return size


def patch_sqs_message_size(host: PatchHost | None) -> Undo:
    """A message SQS would find too long is refused as SQS refuses it.

    SQS measures a message as its body's UTF-8 bytes plus each attribute's name, data type
    and value, against the queue's ``MaximumMessageSize``, and a SendMessageBatch's messages
    together against 1 MiB (``BatchRequestTooLong``). moto 5.2.5 counts the body's
    characters only: it takes a body at the limit with attributes over it, and a batch of
    multi-byte text over it. Applied to every test on moto too (``tests/conftest.py``);
    ``host`` is not used.
    """
    from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue
    from moto.sqs.models import SQSBackend

    original_send = SQSBackend.__dict__["send_message"]
    original_batch = SQSBackend.__dict__["send_message_batch"]

    def refuse(queue: Any, body: str, attributes: dict[str, Any] | None) -> int:
        size = sqs_message_size(body, attributes)
        limit = int(queue.maximum_message_size)
        if size > limit:
            raise InvalidParameterValue(
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{limit} bytes."
            )
        return size

    def send_message(
        self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any
    ) -> Any:
        attributes = kwargs.get("message_attributes", args[0] if args else None)
        refuse(self.get_queue(queue_name), message_body, attributes)
        return original_send(self, queue_name, message_body, *args, **kwargs)

    def send_message_batch(self: Any, queue_name: str, entries: dict[str, Any]) -> Any:
        queue = self.get_queue(queue_name)
        total = sum(
            refuse(queue, e["MessageBody"], e.get("MessageAttributes")) for e in entries.values()
        )
        if total > SQS_BATCH_LIMIT_BYTES:
            raise BatchRequestTooLong(total)
        return original_batch(self, queue_name, entries)

    undo_send = _swap(SQSBackend, "send_message", send_message)
    undo_batch = _swap(SQSBackend, "send_message_batch", send_message_batch)

    def undo() -> None:
        undo_batch()
        undo_send()

    return undo


# --- EventBridge --------------------------------------------------------------------------
def patch_event_targets(host: PatchHost) -> Undo:
    """Rules deliver to Lambda, Step Functions and SNS targets, and behave as on AWS.

    moto's ``Rule.send_to_targets`` raises ``NotImplementedError`` for those targets,
    delivers while a rule is disabled, and lets schedule-only rules match every event.
    The patched method skips disabled and schedule-only rules, matches with moto's own
    ``EventPattern``, hands each target to the runtime, and leaves the targets moto does
    deliver (logs, archives, buses, API destinations) to moto's original code.
    """
    from moto.events.models import Rule

    original = Rule.__dict__["send_to_targets"]

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if self.state == "DISABLED":
            return
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        if not self.event_pattern.matches_event(original_event):
            return
        left_to_moto = [
            target
            for target in self.targets
            if not host.deliver_event_target(self, target, original_event)
        ]
        if left_to_moto:
            clone = copy.copy(self)
            clone.targets = left_to_moto
            original(clone, original_event, transform_input)

    return _swap(Rule, "send_to_targets", send_to_targets)


def patch_put_events_time(host: PatchHost) -> Undo:
    """An event put without ``Time`` carries the virtual time, not the wall clock."""
    from moto.events.models import EventsBackend

    original = EventsBackend.__dict__["put_events"]

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stamped = [e if e.get("Time") else {**e, "Time": host.clock.epoch()} for e in events]
        result: list[dict[str, Any]] = original(self, stamped)
        return result

    return _swap(EventsBackend, "put_events", put_events)


# EventBridge's bound on one PutEvents request (its entries together): 256 KB until
# 29 January 2026, 1 MB since (AWS Compute Blog, "payloads up to 1 MB" for EventBridge, SQS
# and asynchronous Lambda). Kizuna's own calls keep to 256 KB (kizuna.adapters.eventbridge).
PUT_EVENTS_LIMIT_BYTES = 1024 * 1024
_PUT_EVENTS_CHECKED = threading.local()


def put_events_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge counts it ("Calculating PutEvents event entry
    size"): 14 bytes for a Time, the UTF-8 bytes of Source, DetailType, Detail and each of
    its Resources."""
    size = 14 if entry.get("Time") else 0
    for field in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(field) or "").encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


def patch_put_events_size(host: PatchHost | None) -> Undo:
    """A PutEvents request over 1 MB is refused as EventBridge refuses it.

    EventBridge answers ``ValidationException`` ("Total size of the entries in the request is
    over the limit.") when the entries of one request, counted as :func:`put_events_size`
    counts, exceed its bound together (so also one entry over it); moto 5.2.5 takes any
    size. Only the request as the caller made it is measured (the runtime's own stamp of a
    missing ``Time``, below, does not count), once however often the patch is applied.
    Applied to every test on moto too (``tests/conftest.py``); ``host`` is not used.
    """
    from moto.events.exceptions import ValidationException
    from moto.events.models import EventsBackend

    original = EventsBackend.__dict__["put_events"]

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if getattr(_PUT_EVENTS_CHECKED, "active", False):
            result: list[dict[str, Any]] = original(self, events)
            return result
        if sum(put_events_size(e) for e in events) > PUT_EVENTS_LIMIT_BYTES:
            raise ValidationException("Total size of the entries in the request is over the limit.")
        _PUT_EVENTS_CHECKED.active = True
        try:
            result = original(self, events)
        finally:
            _PUT_EVENTS_CHECKED.active = False
        return result

    return _swap(EventsBackend, "put_events", put_events)


# --- botocore: count calls, answer what moto lacks ----------------------------------------
_HOST: PatchHost | None = None


def _before_call(
    model: Any = None, params: Any = None, request_signer: Any = None, context: Any = None, **_: Any
) -> tuple[Any, dict[str, Any]] | None:
    host = _HOST
    if host is None or model is None:
        return None
    return host.before_call(
        model.service_model.service_name,
        model.name,
        params if params is not None else {},
        request_signer,
        context if context is not None else {},
    )


def _after_call(
    model: Any = None,
    http_response: Any = None,
    parsed: Any = None,
    context: Any = None,
    **_: Any,
) -> None:
    host = _HOST
    if host is None or model is None:
        return
    host.after_call(
        model.service_model.service_name,
        model.name,
        http_response,
        parsed if parsed is not None else {},
        context if context is not None else {},
    )


_HOOKS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("before-call", _before_call),
    ("after-call", _after_call),
)


_SESSIONS: dict[str, Any] = {}


def shared_session(kind: str, access_key: str | None = None, region: str | None = None) -> Any:
    """A boto3 session made after the hooks joined, kept for the process.

    Loading botocore's endpoint and service data costs ~0.25 s per new session; sharing
    one per kind ("default" for handlers, "runtime" for the runtime's own clients) keeps a
    new ``LocalCloud`` (one per test) cheap. The boto3 session itself is shared, not only
    its botocore session: wrapping one botocore session in a second boto3 session registers
    boto3's customizations twice, and S3 clients then fail to build ("Cannot inject class
    attribute 'upload_file'").
    """
    import boto3

    if kind not in _SESSIONS:
        _SESSIONS[kind] = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=access_key, region_name=region
        )
    return _SESSIONS[kind]


def register_botocore_hooks(host: PatchHost) -> Undo:
    """Every botocore session made from now on reports its calls to the cloud.

    The handlers join ``botocore.handlers.BUILTIN_HANDLERS`` (the way moto's own stubber
    joins), so every client made after this (the runtime's, the handlers', moto's Step
    Functions interpreter's) emits ``before-call``/``after-call`` to them: they count
    ``(service, operation)`` and answer ``pinpoint:SendMessages`` (and
    ``pinpoint-sms-voice-v2:SendTextMessage``), which moto does not implement. boto3's
    default session is replaced, while the cloud is up, by one made after the hooks
    joined. A client made from an older session is not seen (as with moto itself).
    Sessions keep the handlers after the cloud closes; they do nothing then.
    """
    import boto3
    from botocore.handlers import BUILTIN_HANDLERS

    global _HOST  # noqa: PLW0603 - one active cloud per process, as with moto
    _HOST = host
    for hook in _HOOKS:
        if hook not in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.append(hook)
    previous_default = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = shared_session("default")

    def undo() -> None:
        global _HOST  # noqa: PLW0603
        _HOST = None
        boto3.DEFAULT_SESSION = previous_default

    return undo


# --- HTTP: LINE's Messaging API and Lambda function URLs -------------------------------------
def intercept_requests_library(host: PatchHost) -> Undo:
    """``requests`` calls to LINE's API and to function URLs are answered in-process.

    Adds a ``responses`` callback to moto's own (already active) ``responses`` mock, which
    prefers plain ``responses.CallbackResponse`` matches over its AWS callbacks. Anything
    else keeps moto's behaviour (AWS endpoints mocked, other hosts passed through).
    """
    import responses
    from moto.core.models import responses_mock

    def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        return host.http_request(str(request.method), str(request.url), dict(request.headers), body)

    registered = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
        response = responses.CallbackResponse(method=method, url=INTERCEPTED_URL, callback=callback)
        responses_mock.add(response)
        registered.append(response)

    def undo() -> None:
        for response in registered:
            responses_mock.remove(response)

    return undo


def intercept_urllib(host: PatchHost) -> Undo:
    """``urllib.request`` calls to LINE's API, to function URLs, to the configured webhook
    endpoints and to a user pool's JWKS
    (``https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json``, what an API
    function fetches to verify id tokens) are answered in-process.

    Wraps ``urllib.request.HTTPSHandler.https_open``, so ``urlopen`` and custom openers
    alike reach the runtime for those hosts and the network for anything else.
    """
    original = urllib.request.HTTPSHandler.__dict__["https_open"]  # the one to fall back to

    def https_open(self: Any, req: urllib.request.Request) -> Any:
        hostname = req.host.split(":")[0]
        if not (INTERCEPTED_HOST.match(hostname) or host.intercepts(hostname)):
            return original(self, req)
        data = req.data if isinstance(req.data, bytes) else None
        headers = {k: str(v) for k, v in req.header_items()}
        status, response_headers, body = host.http_request(
            req.get_method(), req.full_url, headers, data
        )
        message = Message()
        for name, value in response_headers.items():
            message[name] = value
        response = urllib.response.addinfourl(io.BytesIO(body), message, req.full_url, status)
        response.msg = "OK" if status < 400 else "Error"  # type: ignore[attr-defined]
        return response

    return _swap(urllib.request.HTTPSHandler, "https_open", https_open)


PATCHES: tuple[Callable[[PatchHost], Undo], ...] = (
    patch_wait_states,
    patch_retry_intervals,
    patch_execution_names,
    patch_execution_dates,
    patch_sfn_client_cache,
    patch_asl_parse_cache,
    patch_lambda_invoke,
    patch_lambda_task_client_errors,
    patch_dynamodb_item_responses,
    patch_dynamodb_item_sizes,
    patch_dynamodb_projected_scans,
    patch_moto_parse_caches,
    patch_dynamodb_query_candidates,
    patch_dynamodb_transactions,
    patch_dynamodb_key_filters,
    patch_dynamodb_batch_keys,
    patch_dynamodb_request_rules,
    patch_scheduler_rules,
    patch_cognito_alias_usernames,
    patch_sqs_message_clock,
    patch_sqs_retention_check,
    patch_sqs_message_size,
    patch_event_targets,
    patch_put_events_time,
    patch_put_events_size,
    register_botocore_hooks,
    intercept_requests_library,
    intercept_urllib,
)


def apply_all(host: PatchHost) -> Undo:
    """Apply every patch; the returned function undoes them in reverse order."""
    undos: list[Undo] = []
    try:
        for patch in PATCHES:
            undos.append(patch(host))
    except BaseException:
        for undo in reversed(undos):
            undo()
        raise

    def undo_all() -> None:
        for undo in reversed(undos):
            undo()

    return undo_all
