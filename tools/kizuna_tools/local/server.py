"""``LocalCloud.serve()``: the local runtime on real sockets, with its clock running.

Two servers on 127.0.0.1: moto's (every AWS API, for the AWS CLI and ``--endpoint-url``) and
the HTTP API's (:mod:`kizuna_tools.local.gateway`: the template's API Gateway HTTP API, the
console included). The API server also answers ``/_local/...``, the local runtime's own
controls, which are never part of a deployed API:

- ``GET /_local/clock``: the virtual time and speed;
- ``POST /_local/clock`` ``{"by": "2h"}`` or ``{"to": "2026-02-01T00:00:00Z"}``: move it
  forward (firing what falls due, in order, as ``advance_to`` does);
- ``POST /_local/users`` ``{"username": ..., "group": ...}``: a console user, with its password;
- ``POST /_local/scoring`` ``{"as_of": ...}``: run the daily scoring job now and wait for it;
- ``GET /_local/stack``: the names and URLs of what was provisioned.

The clock follows real time times ``speed`` from an anchor that every manual move resets;
a background thread fires what falls due and drains every ``tick_seconds``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kizuna_tools.local.gateway import MAX_PAYLOAD_BYTES, HttpResponse, not_found

if TYPE_CHECKING:
    from kizuna_tools.local.cloud import LocalCloud

LOG = logging.getLogger(__name__)
LOCAL_PREFIX = "/_local/"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")


def parse_duration(text: str) -> timedelta:
    """``2h``, ``1d12h``, ``90m``, ``30s``: a positive duration."""
    found = _DURATION.match(text.strip())
    if not text.strip() or not found or not any(found.groups()):
        raise ValueError(f"{text!r} is not a duration like 2h, 1d12h, 90m or 30s")
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if delta <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return delta


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset (``2026-02-01T09:00:00+09:00``, ``...Z``), or a
    date (``1997-06-01``: midnight UTC)."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 instant or date") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +09:00)")
    return parsed.astimezone(UTC)


class ServeHandle:
    """A running ``cloud.serve()``: moto's server, the API server and the clock thread."""

    def __init__(
        self,
        cloud: LocalCloud,
        port: int,
        *,
        api_port: int | None,
        speed: float,
        tick_seconds: float,
    ) -> None:
        from moto.server import ThreadedMotoServer

        if speed < 0:
            raise ValueError("speed must be >= 0 (0 stops the clock between manual moves)")
        self.cloud = cloud
        self.speed = speed
        self.tick_seconds = tick_seconds
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.api_server: Any = None
        self.api_port: int | None = None
        self.api_url: str | None = None
        self._stop = threading.Event()
        self._anchor_lock = threading.Lock()
        self._anchor = (time.monotonic(), cloud.clock.now())
        self._move_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._requested_api_port = api_port

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ServeHandle:
        self.server.start()
        self.port = int(self.server.get_host_and_port()[1])
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        try:
            if self._requested_api_port is not None:
                self._start_api(self._requested_api_port)
            loop = threading.Thread(target=self._run, name="kizuna-local-serve", daemon=True)
            loop.start()
            self._threads.append(loop)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_api(self, port: int) -> None:
        from werkzeug.serving import make_server

        self.api_server = make_server("127.0.0.1", port, self._wsgi, threaded=True)
        self.api_port = int(self.api_server.server_port)
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        thread = threading.Thread(
            target=self.api_server.serve_forever, name="kizuna-local-api", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self.api_server is not None:
            self.api_server.shutdown()
            self.api_server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        self.server.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> None:
        """Block until stopped (Ctrl-C stops it)."""
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> ServeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the clock ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            with self._anchor_lock:
                real, virtual = self._anchor
            target = virtual + timedelta(seconds=(time.monotonic() - real) * self.speed)
            try:
                self.cloud.advance_to(max(self.cloud.clock.now(), target))
            except Exception:  # keep serving; the error is in the log
                LOG.exception("kizuna_tools.local serve loop")

    def advance_to(self, target: datetime) -> datetime:
        """Move the virtual clock to ``target`` now (what falls due fires, in order); the
        clock then runs on from there at ``speed``."""
        if target.tzinfo is None:
            raise ValueError("give an instant with its UTC offset")
        with self._move_lock:
            if target < self.cloud.clock.now():
                raise ValueError(
                    f"the virtual clock is at {self.cloud.clock.now().isoformat()} and only "
                    "moves forward"
                )
            reached = self.cloud.advance_to(target)
            with self._anchor_lock:
                self._anchor = (time.monotonic(), reached)
        return reached

    def advance(self, delta: timedelta) -> datetime:
        return self.advance_to(self.cloud.clock.now() + delta)

    # --- HTTP --------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path)
        try:
            if target.startswith(LOCAL_PREFIX) or target.rstrip("?") == LOCAL_PREFIX.rstrip("/"):
                response = self._local(request, target.split("?", 1)[0])
            elif (request.content_length or 0) > MAX_PAYLOAD_BYTES:
                response = _json(413, {"message": "Request Entity Too Large"})
            elif not self.cloud.http_apis:
                response = not_found()
            else:
                response = self.cloud.http(
                    request.method,
                    target,
                    list(request.headers.items()),
                    request.get_data(cache=False),
                    source_ip=str(request.remote_addr or "127.0.0.1"),
                )
        except Exception:
            LOG.exception("kizuna_tools.local API server")
            response = _json(500, {"message": "Internal Server Error"})
        start_response(f"{response.status} {_reason(response.status)}", response.headers)
        return [response.body]

    def _local(self, request: Any, path: str) -> HttpResponse:
        from kizuna_tools.local.cloud import LocalCloudError

        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                loaded = json.loads(request.get_data() or b"{}")
            except ValueError:
                return _json(400, {"message": "the body must be JSON"})
            if not isinstance(loaded, dict):
                return _json(400, {"message": "the body must be a JSON object"})
            body = loaded
        try:
            if path == "/_local/clock" and request.method == "GET":
                return _json(200, self.clock_state())
            if path == "/_local/clock" and request.method == "POST":
                return _json(200, self._move(body))
            if path == "/_local/stack" and request.method == "GET":
                return _json(200, self.cloud.describe_stack(self))
            if path == "/_local/users" and request.method == "POST":
                username = _text(body, "username")
                group = _text(body, "group")
                password = self.cloud.add_user(username, group)
                return _json(201, {"username": username, "group": group, "password": password})
            if path == "/_local/scoring" and request.method == "POST":
                as_of = parse_instant(_text(body, "as_of")) if body.get("as_of") else None
                return _json(200, self.cloud.run_scoring(as_of=as_of))
        except (ValueError, KeyError, LocalCloudError) as error:
            return _json(400, {"message": str(error).strip("'\"")})
        return _json(404, {"message": f"no local control {request.method} {path}"})

    def clock_state(self) -> dict[str, Any]:
        return {"now": self.cloud.clock.now().isoformat(), "speed": self.speed}

    def _move(self, body: dict[str, Any]) -> dict[str, Any]:
        if set(body) - {"by", "to"} or len(body) != 1:
            raise ValueError("give exactly one of 'by' (like 2h) or 'to' (an ISO instant)")
        if "by" in body:
            self.advance(parse_duration(_text(body, "by")))
        else:
            self.advance_to(parse_instant(_text(body, "to")))
        return self.clock_state()


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name!r} must be a non-empty string")
    return value


def _json(status: int, data: Any) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(data).encode())


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
