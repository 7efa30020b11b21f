"""The webhook channel's HTTP client on real sockets (a local server): what it does with a
redirect."""

from __future__ import annotations

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
