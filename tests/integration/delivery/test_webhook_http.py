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


def test_a_trickling_answer_is_read_for_the_timeout_not_for_minutes() -> None:
    """An endpoint that answers 200 and then a byte of its body every 0.2 s (each socket
    read well within the 1 s timeout) for 60 s: the client returns about 1 s after the
    status with what came, instead of reading for a minute."""
    import http.server
    import threading
    import time

    from kizuna.delivery.channels import UrllibHttp

    stop = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "300")
            self.end_headers()
            self.wfile.flush()
            for _ in range(300):
                if stop.wait(0.2):
                    return
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = UrllibHttp()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        request = urllib.request.Request(url, data=b"{}", method="POST")
        started = time.monotonic()
        with client.opener.open(request, timeout=1.0) as response:
            body = client._read(response, 1.0)
        elapsed = time.monotonic() - started
        assert response.status == 200
        assert 0 < len(body) < 300 and elapsed < 5.0  # not 60 s
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
