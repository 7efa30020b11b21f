"""A pattern that checks a whole value must not let a line feed through: Python's ``$``
also matches before a final ``\\n``, so ``re.match(r"^\\d+$", "12\\n")`` holds. Every pattern
written in the code ends with ``\\Z`` (or is used with ``fullmatch``); pydantic's patterns
(Rust's regex, where ``$`` is the end of the text) and the schemas' (ECMA) keep ``$``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("layers", "tools", "functions", "infra")
# published in the OpenAPI document (an ECMA pattern has no \Z); the code uses fullmatch
PUBLISHED = {("layers/kizuna/api/routes/messages.py", "IDEMPOTENCY_KEY")}


def _patterns_ending_in_dollar() -> list[str]:
    found = []
    for root in SOURCES:
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text())
            named = {
                (t.id, id(node.value))
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)
            }
            allowed = {value for name, value in named if (rel, name) in PUBLISHED}
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("compile", "match", "search")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "re"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    continue
                text = node.args[0].value
                if text.endswith("$") and not text.endswith("\\$") and id(node) not in allowed:
                    found.append(f"{rel}:{node.lineno}: {text[-40:]}")
    return found


def test_no_pattern_in_the_code_ends_with_a_dollar() -> None:
    assert _patterns_ending_in_dollar() == []


def test_the_published_pattern_is_used_whole() -> None:
    source = (ROOT / "layers/kizuna/api/routes/messages.py").read_text()
    assert "IDEMPOTENCY_KEY.match(" not in source and "IDEMPOTENCY_KEY.search(" not in source


@pytest.mark.parametrize(
    ("module", "name", "good"),
    [
        ("kizuna.delivery.policy", "E164", "+819012345678"),
        ("kizuna.delivery.cards", "CARD_ID", "0" * 32),
        ("kizuna.delivery.signing", "_TOKEN_CHARS", "abc_-1"),
        ("kizuna.delivery.unsubscribe", "_TOPIC", "newsletter"),
        ("kizuna.delivery.templates", "_NAME", "coupon"),
        ("kizuna.campaigns.model", "_HHMM", "21:00"),
        ("kizuna.domain.schedule_expressions", "_RATE", "rate(5 minutes)"),
    ],
)
def test_a_value_with_a_line_feed_after_it_is_refused(module: str, name: str, good: str) -> None:
    import importlib

    pattern = getattr(importlib.import_module(module), name)
    assert pattern.match(good)
    assert pattern.match(good + "\n") is None


def test_shared_patterns_are_checked_whole_where_the_code_compiles_them() -> None:
    from kizuna.api.console import pages_customers, pages_segments
    from kizuna.services import campaign_admin

    for source in (pages_customers, pages_segments, campaign_admin):
        text = Path(str(source.__file__)).read_text()
        for name in ("_CUSTOMER_ID", "_NAME", "_TEXT", "_DESCRIPTION"):
            assert f"{name}.match(" not in text, (source.__name__, name)
