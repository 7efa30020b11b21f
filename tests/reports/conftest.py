"""Report tests run with no network: the report must be self-contained.

Unix sockets stay allowed: asyncio (used by the Playwright driver of the browser test)
needs a socketpair for its event loop; TCP/UDP stay blocked in this process.
"""

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
