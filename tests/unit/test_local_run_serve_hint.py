"""`kizuna local run` ends by naming the command that serves the shop it ran: that very shop,
not `make console`'s 1,000 x 30 demo (which takes minutes and is another shop)."""

from __future__ import annotations

import shlex
from pathlib import Path

from kizuna_tools.cli.local import serve_command


def test_the_demo_run_is_make_console() -> None:
    # Given the demo's own run, when the hint is built, then it is `make console`
    assert serve_command(1000, 30, 42, None, None, True, 8080, 4566) == "make console"


def test_a_smaller_run_is_served_by_its_own_command() -> None:
    # Given a 50 x 3 run (README's quick start), when the hint is built
    hint = serve_command(50, 3, 42, None, None, True, 8080, 4566)
    # then it runs that shop again, not make console's 1,000 x 30
    assert hint == "kizuna local run --serve --customers 50 --days 3"


def test_every_option_that_shaped_the_run_is_repeated() -> None:
    # Given a run with another seed, configuration, faults, no engagement and other ports
    hint = serve_command(1000, 30, 7, Path("my config.json"), "*=0.1", False, 8123, 4623)
    # then the command repeats each of them, quoted for a shell
    assert shlex.split(hint) == [
        "kizuna", "local", "run", "--serve", "--customers", "1000", "--days", "30",
        "--seed", "7", "--config", "my config.json", "--faults", "*=0.1",
        "--no-engagement", "--port", "4623", "--api-port", "8123",
    ]  # fmt: skip
