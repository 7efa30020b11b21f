"""Lambda functions run in-process: handler loading, the context object, environment.

A function is identified by its ``kizuna:function`` metadata, which names
``<project_root>/functions/<name>/handler.py``; its ``handler(event, context)`` is called
with the function's own environment variables applied to ``os.environ`` (and restored after).
Invocations are serialized by one re-entrant lock, because ``os.environ`` is process-wide:
a handler may invoke another function synchronously (same thread), but two functions never
run at the same time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kizuna_tools.local.template import ACCOUNT_ID, REGION

Handler = Callable[[Any, Any], Any]


@dataclass
class FunctionSpec:
    """One ``AWS::Lambda::Function`` of the template, as the runtime runs it."""

    logical_id: str
    name: str
    arn: str
    code_name: str | None
    handler_path: Path | None
    environment: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 128
    timeout_seconds: int = 3
    dead_letter_arn: str | None = None
    max_retry_attempts: int = 2
    on_failure_arn: str | None = None


_CURRENT = threading.local()


def current_function() -> str | None:
    """The function whose handler is running on this thread (for per-function call counts)."""
    name: str | None = getattr(_CURRENT, "name", None)
    return name


@dataclass
class Invocation:
    """What one call of a handler did."""

    function: str
    ok: bool
    result: Any
    error: dict[str, Any] | None = None
    request_id: str = ""
    seconds: float = 0.0

    def payload(self) -> Any:
        """The response payload Lambda returns: the result, or the error object."""
        return self.result if self.ok else self.error


class LambdaContext:
    """The context object a Python Lambda handler receives."""

    def __init__(self, spec: FunctionSpec, request_id: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"local/[$LATEST]{request_id.replace('-', '')}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_environment(spec: FunctionSpec) -> dict[str, str]:
    """The variables Lambda sets, then the function's own."""
    env = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "_HANDLER": "handler.handler",
    }
    env.update(spec.environment)
    return env


@contextmanager
def applied_environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class FunctionRunner:
    """Loads handlers once per runtime and calls them as Lambda would."""

    def __init__(
        self,
        project_root: Path,
        *,
        namespace: str = "kizuna_local_fn",
        environment_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.project_root = project_root
        self._namespace = namespace
        self.environment_overrides = dict(environment_overrides or {})
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.RLock()
        self.invocations = 0
        self.completed = 0  # invocations that returned or raised: the watchdog's progress
        # (function name, thread ident, monotonic start) of the handlers running, outermost first
        self.running: list[tuple[str, int, float]] = []
        self.invocations_by_function: Counter[str] = Counter()
        self.seconds_by_function: defaultdict[str, float] = defaultdict(float)

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        """What the handler sees: Lambda's variables, the function's, then the overrides."""
        return {**lambda_environment(spec), **self.environment_overrides}

    def handler_path(self, code_name: str) -> Path:
        return self.project_root / "functions" / code_name / "handler.py"

    def _load(self, spec: FunctionSpec) -> Handler:
        if spec.name in self._handlers:
            return self._handlers[spec.name]
        if spec.handler_path is None or not spec.handler_path.is_file():
            raise FileNotFoundError(
                f"function {spec.logical_id} has no handler file "
                f"({spec.handler_path or 'no kizuna:function metadata'})"
            )
        module_name = f"{self._namespace}_{spec.code_name}_{len(self._handlers)}"
        module_spec = importlib.util.spec_from_file_location(module_name, spec.handler_path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec.handler_path}")
        module: ModuleType = importlib.util.module_from_spec(module_spec)
        folder = str(spec.handler_path.parent)
        sys.path.insert(0, folder)  # Lambda puts the function's folder first on sys.path
        try:
            with applied_environment(self.environment(spec)):
                sys.modules[module_name] = module
                module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        finally:
            if sys.path and sys.path[0] == folder:
                sys.path.pop(0)
        handler: Handler | None = getattr(module, "handler", None)
        if not callable(handler):
            raise AttributeError(f"{spec.handler_path} defines no handler(event, context)")
        self._handlers[spec.name] = handler
        return handler

    def invoke(self, spec: FunctionSpec, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        with self._lock:
            self.invocations += 1
            self.invocations_by_function[spec.name] += 1
            _CURRENT.name = spec.name
            frame = (spec.name, threading.get_ident(), time.monotonic())
            self.running.append(frame)
            try:
                handler = self._load(spec)
                with applied_environment(self.environment(spec)):
                    result = handler(event, LambdaContext(spec, request_id))
                # Lambda serializes the result: a value JSON cannot carry is an error.
                result = json.loads(json.dumps(result)) if result is not None else None
            except Exception as exc:
                error = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "requestId": request_id,
                    "stackTrace": traceback.format_exception(exc)[-8:],
                }
                return Invocation(
                    spec.name, False, None, error, request_id, time.perf_counter() - started
                )
            finally:
                _CURRENT.name = self.running[-2][0] if len(self.running) > 1 else None
                self.running.remove(frame)
                self.completed += 1
                self.seconds_by_function[spec.name] += time.perf_counter() - started
        return Invocation(spec.name, True, result, None, request_id, time.perf_counter() - started)


def reset_containers(prefix: str = "kizuna.") -> int:
    """Clear every ``functools.lru_cache`` in the loaded ``kizuna.*`` modules: a cold start.

    Handlers build their adapters and settings once per container (STYLE.md); a new
    ``LocalCloud`` is a new set of containers, so nothing cached for a previous cloud (its
    table names, its clients) leaks into the next. ``kizuna_tools.local`` itself is left alone.
    """
    cleared = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefix) or name.startswith("kizuna_tools.local") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and hasattr(value, "__wrapped__"):
                clear()
                cleared += 1
    return cleared


def unknown_function_error(name: str) -> dict[str, Any]:
    return {
        "errorMessage": (
            f"kizuna_tools.local runs only the template's functions; {name!r} is not one"
        ),
        "errorType": "KizunaLocalUnknownFunction",
        "account": ACCOUNT_ID,
    }
