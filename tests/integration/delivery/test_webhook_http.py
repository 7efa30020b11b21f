"""The webhook channel's HTTP client on real sockets (a local server): what it does with a
redirect and with an answer that trickles in."""

from __future__ import annotations

import urllib.request

import pytest

pytestmark = pytest.mark.integration


def test_a_redirect_is_the_answer_not_followed() -> None:
    # given an endpoint that answers 302 to another host over plain http
    import http.server
    import threading
    import urllib.error
    import urllib.request

    from kizuna.delivery.channels import UrllibHttp

    seen: list[str] = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)

    class Redirect(Sink):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{sink.server_port}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    source = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (sink, source):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # when the client Kizuna posts with (its opener; post itself refuses plain http)
        url = f"http://127.0.0.1:{source.server_port}/hook"
        request = urllib.request.Request(url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as answer:
            UrllibHttp().opener.open(request, timeout=5)
        # then the 302 is the answer (a permanent failure), and nothing reached the other host
        assert answer.value.code == 302 and seen == []
        answer.value.close()
    finally:
        for server in (sink, source):
            server.shutdown()
            server.server_close()


class Trickling:
    """A local endpoint that answers ``status_line`` and then, a byte every 0.2 s (each
    socket read well within a 1 s timeout) for a minute, its headers (``in_headers``) or
    its body."""

    def __init__(self, in_headers: bool) -> None:
        import http.server
        import threading

        stop = self.stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                if not in_headers:
                    self.wfile.write(b"Content-Length: 300\r\n\r\n")
                self.wfile.flush()
                for _ in range(300):
                    if stop.wait(0.2):
                        return
                    try:
                        self.wfile.write(b"X" if not in_headers else b"X-Slow: 1\r\n")
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_answer_ends_at_the_requests_timeout_not_in_minutes(
    in_headers: bool,
) -> None:
    """The request's timeout (1 s) bounds the whole exchange: an answer whose body or
    headers come a byte every 0.2 s for a minute ends about a second in (its socket shut),
    with its status; per-operation socket timeouts alone read it for the minute."""
    import time

    from kizuna.delivery.channels import UrllibHttp

    endpoint = Trickling(in_headers)
    try:
        request = urllib.request.Request(endpoint.url(), data=b"{}", method="POST")
        started = time.monotonic()
        answer = UrllibHttp().exchange(request, 1.0)
        elapsed = time.monotonic() - started
        assert answer.status == 200 and elapsed < 5.0  # not 60 s
        if not in_headers:
            assert 0 < len(answer.body) < 300
    finally:
        endpoint.close()
