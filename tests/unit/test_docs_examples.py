"""The examples of the docs work as written (CONTRIBUTING.md, "Examples in the docs").

Every `kizuna ...` command the docs show names commands and options the CLI has, and every
fenced block whose info string names a kind after its language (```` ```yaml program ````)
is checked by the loader or the model that reads that kind: programs, campaigns and
segments as `kizuna programs validate` / `kizuna campaigns validate` load them, the
configuration as `KizunaConfig`, an event's detail as `POST /machine/events` and ingest
validate it, an HTTP request or answer against the route's schemas in the app's OpenAPI
document. A block with only a language (```` ```yaml ````) is prose, not checked."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml
from pydantic import TypeAdapter

from kizuna.api.app import build_app, openapi_document
from kizuna.campaigns.loader import parse_campaign
from kizuna.delivery.line_messages import parse_template, template_problems
from kizuna.events.custom import vocabulary
from kizuna.programs.loader import load_program
from kizuna.programs.model import Step
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import VOCABULARY, SegmentDefinition, load_segments
from kizuna.services.campaign_admin import CampaignRules
from kizuna.services.intake import EventIntake
from kizuna_tools.cli import app as cli_app
from kizuna_tools.demo import checkout_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "channels").glob("*.md")),
]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
SHELL = {"", "bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    lang: str
    kind: str
    args: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        words = match["info"].split()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : end])
        lang = words[0] if words else ""
        kind = words[1] if len(words) > 1 else ""
        yield Block(str(path.relative_to(ROOT)), i + 1, lang, kind, tuple(words[2:]), body)
        i = end + 1


BLOCKS = [block for path in DOCS for block in _blocks(path)]


def _examples(*kinds: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind in kinds]


# -- the configuration the examples are checked against ---------------------------------------


def _config_parts(block: Block) -> dict[str, Any]:
    """A configuration example: a whole configuration, or some of its keys (JSON written
    without the outer braces, `"custom": {...}`)."""
    if block.lang == "json":
        text = block.text.strip()
        return dict(json.loads(text if text.startswith("{") else "{" + text + "}"))
    return dict(yaml.safe_load(block.text))


def _docs_config() -> KizunaConfig:
    """The sample shop's configuration (cdk.json's kizuna:config, what `kizuna programs
    validate` reads here), with the keys the configuration examples add that it leaves out
    (the `crm` webhook of docs/channels/WEBHOOK.md, say)."""
    raw = dict(checkout_config())
    for block in _examples("config"):
        for key, value in _config_parts(block).items():
            raw.setdefault(key, value)
    return KizunaConfig.model_validate(raw)


CONFIG = _docs_config()
VOCAB = vocabulary(CONFIG)
SEGMENTS = load_segments(ROOT / "segments", VOCAB)
RULES = CampaignRules(
    CONFIG,
    ROOT / "templates",
    SEGMENTS,
    frozenset(p.stem for p in (ROOT / "programs").glob("*.y*ml")),
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # campaign examples schedule 2026 dates


# -- programs, campaigns, segments, configuration ---------------------------------------------

# what a part of a program completes (`program-part`): the smallest valid program
MINIMAL_PROGRAM: dict[str, Any] = {
    "id": "docs-example",
    "name": "A docs example",
    "trigger": {"event": "order.placed"},
    "steps": [{"id": "send", "type": "send", "channels": ["email"], "template": "t"}],
}
# what a part of a campaign completes (`campaign-part`): the sample shop's campaign, whose
# templates are in templates/
SAMPLE_CAMPAIGN: dict[str, Any] = yaml.safe_load(
    (ROOT / "campaigns" / "month-end-sale.yaml").read_text(encoding="utf-8")
)
STEP = TypeAdapter(Step)


def _program(raw: Any, tmp_path: Path) -> None:
    assert isinstance(raw, dict), "a program is a mapping"
    path = tmp_path / f"{raw.get('id', 'docs-example')}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_program(path, None, set(SEGMENTS), VOCAB, set(CONFIG.webhooks))


def check_program(block: Block, tmp_path: Path) -> None:
    _program(yaml.safe_load(block.text), tmp_path)


def check_program_part(block: Block, tmp_path: Path) -> None:
    """Some keys of a program over the minimal one, or a list of steps, each checked."""
    raw = yaml.safe_load(block.text)
    if isinstance(raw, list):
        for step in raw:
            STEP.validate_python(step)
        return
    _program({**MINIMAL_PROGRAM, **raw}, tmp_path)


def _campaign(raw: Any) -> None:
    campaign = parse_campaign(raw)
    RULES.validate(raw, RULES.folder_files(campaign), NOW)


def check_campaign(block: Block, tmp_path: Path) -> None:
    _campaign(yaml.safe_load(block.text))


def check_campaign_part(block: Block, tmp_path: Path) -> None:
    _campaign({**SAMPLE_CAMPAIGN, **yaml.safe_load(block.text)})


def check_segment(block: Block, tmp_path: Path) -> None:
    SegmentDefinition.model_validate(yaml.safe_load(block.text), context={VOCABULARY: VOCAB})


def check_config(block: Block, tmp_path: Path) -> None:
    KizunaConfig.model_validate({**checkout_config(), **_config_parts(block)})


def check_event(block: Block, tmp_path: Path) -> None:
    """An inbound event's detail (`json event <detail-type>`), as POST /machine/events and
    ingest validate it; some keys of one (no outer braces) are completed with a customer id
    and a time."""
    (detail_type,) = block.args
    text = block.text.strip()
    if text.startswith("{"):
        detail = json.loads(text)
    else:
        parts = json.loads("{" + text + "}")
        detail = {"customer_id": "c-1", "occurred_at": "2026-01-05T10:00:00+09:00", **parts}
    now = datetime.fromisoformat(detail["occurred_at"]) + timedelta(minutes=1)
    intake = EventIntake(None, CONFIG.event_time, lambda: now, VOCAB)  # type: ignore[arg-type]
    answer = intake.validate(0, {"detail-type": detail_type, "detail": detail}, now)
    assert isinstance(answer, tuple), f"{detail_type}: {answer}"


def check_line_json(block: Block, tmp_path: Path) -> None:
    problems = template_problems(parse_template(block.text))
    assert not problems, problems


# -- HTTP: the app's OpenAPI document ---------------------------------------------------------

OPENAPI = openapi_document(build_app(None))


def _json_values(text: str) -> list[Any]:
    """Every JSON value of a block (an example may show several answers, one after another)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def _operation(method: str, path: str) -> dict[str, Any]:
    ops = OPENAPI["paths"].get(path)
    assert ops is not None, f"no route {path} (the OpenAPI document's: schemas/openapi.json)"
    op = ops.get(method.lower())
    assert op is not None, f"{path} takes no {method} (it takes {', '.join(ops).upper()})"
    return dict(op)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    return bool(
        jsonschema.Draft202012Validator({**schema, "components": OPENAPI["components"]}).is_valid(
            value
        )
    )


def _unknown_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Keys of ``value`` its schema does not name (the models allow extra keys, so the
    schema alone would not catch a misspelled field of an answer)."""
    schema = _resolve(schema)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            for branch in schema[union]:
                if _valid(value, branch):
                    return _unknown_fields(value, branch, where)
            return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in schema["properties"]:
                found += _unknown_fields(item, schema["properties"][key], f"{where}.{key}")
            elif isinstance(extra, dict):
                found += _unknown_fields(item, extra, f"{where}.{key}")
            elif extra is not True:
                found.append(f"{where}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += _unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


def _matches(value: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator({**schema, "components": OPENAPI["components"]}).validate(value)
    unknown = _unknown_fields(value, schema)
    assert not unknown, f"fields the schema does not have: {unknown}"


def _request_body(method: str, path: str, body: Any) -> None:
    op = _operation(method, path)
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    _matches(body, schema)
    if path == "/api/campaigns" and isinstance(body.get("definition"), dict):
        # what the route checks next: the campaign and the library templates it copies
        files = RULES.library_files(body.get("template_sources") or {}, body.get("locales"))
        RULES.validate(body["definition"], files, NOW)


def check_request(block: Block, tmp_path: Path) -> None:
    method, path = block.args
    for body in _json_values(block.text):
        _request_body(method, path, body)


def check_response(block: Block, tmp_path: Path) -> None:
    method, path, status = block.args
    responses = _operation(method, path)["responses"]
    assert status in responses, f"{method} {path} never answers {status} ({', '.join(responses)})"
    schema = responses[status]["content"]["application/json"]["schema"]
    for answer in _json_values(block.text):
        _matches(answer, schema)


def check_http(block: Block, tmp_path: Path) -> None:
    """A request as sent: `METHOD path`, its headers, a blank line, its JSON body."""
    head, _, body = block.text.strip().partition("\n\n")
    request_line, *header_lines = head.splitlines()
    method, path = request_line.split()
    route = path.split("?", 1)[0]
    op = _operation(method, route)
    headers = {k.strip().lower() for k, _, _ in (h.partition(":") for h in header_lines)}
    for parameter in op.get("parameters", []):
        if parameter["in"] == "header" and parameter.get("required"):
            assert parameter["name"].lower() in headers, f"{parameter['name']} is required"
    if body.strip():
        _request_body(method, route, json.loads(body))


CHECKS: dict[str, Callable[[Block, Path], None]] = {
    "program": check_program,
    "program-part": check_program_part,
    "campaign": check_campaign,
    "campaign-part": check_campaign_part,
    "segment": check_segment,
    "config": check_config,
    "event": check_event,
    "line.json": check_line_json,
    "request": check_request,
    "response": check_response,
}
CHECKED = [b for b in BLOCKS if b.kind or b.lang == "http"]


@pytest.mark.parametrize("block", CHECKED, ids=str)
def test_a_marked_example_is_valid(block: Block, tmp_path: Path) -> None:
    check = check_http if block.lang == "http" else CHECKS.get(block.kind)
    assert check is not None, (
        f"{block}: unknown example kind {block.kind!r} (one of {', '.join(CHECKS)}; "
        "CONTRIBUTING.md)"
    )
    check(block, tmp_path)


def test_the_docs_mark_their_examples() -> None:
    # the convention is in use (a rename of the info strings would check nothing)
    kinds = {b.kind for b in CHECKED}
    assert {"program", "campaign", "config", "event", "response"} <= kinds


# -- commands ---------------------------------------------------------------------------------

ROOT_COMMAND = typer.main.get_command(cli_app)
INLINE = re.compile(r"`(kizuna [^`]*)`")


def _commands() -> Iterator[tuple[str, str]]:
    """(where, command) of every `kizuna ...` the docs show: in inline code, and on the
    lines of shell blocks (a trailing comment dropped)."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in INLINE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(ROOT)}:{line}", " ".join(match[1].split())
    for block in BLOCKS:
        if block.lang not in SHELL or block.kind:
            continue
        for n, text_line in enumerate(block.text.splitlines(), start=block.line + 1):
            code = re.sub(r"\s+#.*$", "", text_line).strip()
            if code.startswith("kizuna "):
                yield f"{block.file}:{n}", code


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if type(param).__name__.endswith("Option"):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _takes_value(command: Any, option: str) -> bool:
    for param in command.params:
        if option in getattr(param, "opts", ()):
            return not param.is_flag and not getattr(param, "count", False)
    return False


def command_problems(command: str) -> list[str]:
    """What the CLI would refuse in ``command``: a command or an option it does not have
    (at the level it is given: a group's option goes before the command). Placeholders
    (`…`, `ID`, `<queue>`), `[optional]` brackets and `a|b` alternatives are read as the
    docs mean them."""
    text = command.replace("\\|", "|").replace("[", " ").replace("]", " ")
    try:
        words = shlex.split(text)[1:]
    except ValueError:
        words = text.split()[1:]
    current, path, problems = ROOT_COMMAND, ["kizuna"], []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in {"…", "...", "|"}:
            continue
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in _options(current):
                problems.append(f"`{' '.join(path)}` has no option {name}")
            elif "=" not in word and _takes_value(current, name):
                i += 1
            continue
        if hasattr(current, "commands"):
            names = word.split("|")
            missing = [n for n in names if n not in current.commands]
            if missing:
                problems.append(
                    f"`{' '.join(path)}` has no command {', '.join(missing)} "
                    f"({', '.join(sorted(current.commands))})"
                )
                break
            path.append(names[0])
            current = current.commands[names[0]]
    return problems


COMMANDS = list(_commands())


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_command_the_docs_show_exists(where: str, command: str) -> None:
    assert not command_problems(command), f"{where}: {command}"


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    assert command_problems("kizuna check") != []
    assert command_problems("kizuna campaigns apply x.yaml --outputs o.json") != []
    assert command_problems("kizuna campaigns --outputs o.json apply x.yaml --config c") == []
    assert command_problems("kizuna customers export|erase --legacy-id ID") == []
