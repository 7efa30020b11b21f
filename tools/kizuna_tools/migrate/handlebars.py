"""A Handlebars lexer and parser, enough for Pinpoint message templates.

It reads what Handlebars reads: text, ``{{expr}}`` (escaped), ``{{{expr}}}`` and ``{{&expr}}``
(raw), blocks ``{{#helper ...}} ... {{else}} ... {{/helper}}`` (``{{else if x}}`` chains,
``{{^}}`` as else, inverse sections ``{{^x}}``), comments ``{{! }}`` and ``{{!-- --}}``,
partials ``{{> x}}``, ``\\{{`` as literal braces, whitespace control ``{{~`` / ``~}}`` and
Handlebars' standalone-line rule (a line holding only a block tag, an else, a comment or a
partial disappears with its newline). Expressions: paths (``a.b``, ``this``, ``../x``,
``@index``, ``[odd name]``), string/number/boolean/null literals, sub-expressions
``(helper a b)`` and hash arguments ``key=value``.

The parser builds a tree (:class:`Block`, :class:`Mustache`, ...); whitespace rules are
applied to the text nodes, so the text of the tree is what Handlebars would output around
the tags. A template it cannot read raises :class:`HandlebarsError` with the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Block",
    "Call",
    "Comment",
    "Expr",
    "HandlebarsError",
    "Literal_",
    "Mustache",
    "Node",
    "Partial",
    "Path",
    "SubExpr",
    "Text",
    "parse",
]


class HandlebarsError(ValueError):
    def __init__(self, message: str, line: int):
        self.line = line
        super().__init__(f"line {line}: {message}")


# --- expressions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]  # ("User", "UserAttributes", "FirstName"); () for this
    depth: int = 0  # how many ../
    data: bool = False  # @index, @root.x
    original: str = ""


@dataclass(frozen=True)
class Literal_:
    value: str | int | float | bool | None
    original: str = ""


@dataclass(frozen=True)
class SubExpr:
    call: Call


Expr = Path | Literal_ | SubExpr


@dataclass(frozen=True)
class Call:
    head: Expr
    params: tuple[Expr, ...] = ()
    hash: tuple[tuple[str, Expr], ...] = ()

    @property
    def helper(self) -> str | None:
        """The helper's name when the head is a plain one-part path (``if``, ``upper``)."""
        head = self.head
        if isinstance(head, Path) and not (head.data or head.depth) and len(head.parts) == 1:
            return head.parts[0]
        return None


# --- tree ------------------------------------------------------------------------------------
@dataclass
class Text:
    value: str


@dataclass
class Mustache:
    call: Call
    escaped: bool
    source: str
    line: int
    standalone: bool = False


@dataclass
class Comment:
    value: str
    source: str
    line: int
    standalone: bool = False


@dataclass
class Partial:
    source: str
    line: int
    standalone: bool = False


@dataclass
class Block:
    call: Call
    inverted: bool  # {{^x}} ... {{/x}}
    program: list[Node]
    inverse: list[Node] | None
    source: str  # the opening tag
    line: int
    chained: bool = False  # an {{else if ...}} inside its parent's inverse
    # standalone flags of the opening tag, the else tag and the closing tag
    open_standalone: bool = False
    else_standalone: bool = False
    close_standalone: bool = False
    else_source: str = ""
    close_source: str = ""


Node = Text | Mustache | Comment | Partial | Block


# --- lexer -----------------------------------------------------------------------------------
TagKind = Literal["mustache", "raw", "comment", "open", "inverse", "close", "else", "partial"]


@dataclass
class _Tag:
    kind: TagKind
    body: str  # the expression (or comment text)
    source: str
    line: int
    strip_left: bool
    strip_right: bool
    standalone: bool = False


@dataclass
class _Text:
    value: str


_Token = _Tag | _Text


def _line_of(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _find_close(source: str, start: int, closer: str, line: int) -> int:
    """Index of ``closer`` after ``start``, skipping quoted strings."""
    i, quote = start, ""
    while i < len(source):
        c = source[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif source.startswith(closer, i):
            return i
        i += 1
    raise HandlebarsError(f"unclosed tag (no {closer!r})", line)


def _lex(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    buf: list[str] = []
    i = 0
    while i < len(source):
        at = source.find("{{", i)
        if at < 0:
            buf.append(source[i:])
            break
        if at > 0 and source[at - 1] == "\\" and not (at > 1 and source[at - 2] == "\\"):
            # \{{ is literal: the text up to the next {{ (or end) is not a tag
            buf.append(source[i : at - 1])
            nxt = source.find("{{", at + 2)
            end = len(source) if nxt < 0 else nxt
            buf.append(source[at:end])
            i = end
            continue
        if at > 1 and source[at - 1] == "\\" and source[at - 2] == "\\":
            buf.append(source[i : at - 1])  # \\{{x}}: one backslash, then a real tag
        else:
            buf.append(source[i:at])
        line = _line_of(source, at)
        if source.startswith("{{{{", at):
            raise HandlebarsError("raw blocks ({{{{raw}}}}) are not supported", line)
        j = at + 2
        strip_left = source.startswith("~", j)
        if strip_left:
            j += 1
        if source.startswith("{", j):  # triple-stash
            end = _find_close(source, j + 1, "}}}", line)
            body = source[j + 1 : end]
            stop = end + 3
            strip_right = body.endswith("~")
            body = body[:-1] if strip_right else body
            kind: TagKind = "raw"
        elif source.startswith("!--", j):
            end = source.find("--", j + 3)
            while end >= 0 and not re.match(r"--~?}}", source[end:]):
                end = source.find("--", end + 1)
            if end < 0:
                raise HandlebarsError("unclosed comment {{!-- ... --}}", line)
            body = source[j + 3 : end]
            strip_right = source.startswith("--~", end)
            stop = end + (5 if strip_right else 4)
            kind = "comment"
        elif source.startswith("!", j):
            end = source.find("}}", j)
            if end < 0:
                raise HandlebarsError("unclosed comment {{! ... }}", line)
            body = source[j + 1 : end]
            strip_right = body.endswith("~")
            body = body[:-1] if strip_right else body
            stop = end + 2
            kind = "comment"
        else:
            end = _find_close(source, j, "}}", line)
            body = source[j:end]
            stop = end + 2
            strip_right = body.endswith("~")
            body = body[:-1] if strip_right else body
            kind, body = _classify(body.strip(), line)
        if buf:
            tokens.append(_Text("".join(buf)))
            buf = []
        tokens.append(_Tag(kind, body, source[at:stop], line, strip_left, strip_right))
        i = stop
    if buf:
        tokens.append(_Text("".join(buf)))
    return tokens


def _classify(body: str, line: int) -> tuple[TagKind, str]:
    if not body:
        raise HandlebarsError("empty tag {{}}", line)
    sigil = body[0]
    if sigil == "#":
        if body.startswith("#>") or body.startswith("#*"):
            return "partial", body
        return "open", body[1:].strip()
    if sigil == "^":
        rest = body[1:].strip()
        return ("else", "") if not rest else ("inverse", rest)
    if sigil == "/":
        return "close", body[1:].strip()
    if sigil == ">":
        return "partial", body
    if sigil == "&":
        return "raw", body[1:].strip()
    if sigil in "*":
        return "partial", body  # decorators: reported like partials
    if body == "else" or body.startswith("else ") or body.startswith("else\n"):
        return "else", body[4:].strip()
    return "mustache", body


_STANDALONE_KINDS = {"comment", "open", "inverse", "close", "else", "partial"}


def _whitespace(tokens: list[_Token]) -> None:
    """Apply ``~`` and the standalone-line rule to the text tokens, in place."""
    for i, tok in enumerate(tokens):
        if not isinstance(tok, _Tag):
            continue
        before = tokens[i - 1] if i > 0 else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.strip_left and isinstance(before, _Text):
            before.value = before.value.rstrip()
        if tok.strip_right and isinstance(after, _Text):
            after.value = after.value.lstrip()
    for i, tok in enumerate(tokens):
        if not isinstance(tok, _Tag) or tok.kind not in _STANDALONE_KINDS:
            continue
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if prev is None:
            before_ok = True
        elif isinstance(prev, _Text):
            tail = prev.value.rsplit("\n", 1)
            before_ok = (len(tail) == 2 or i == 1) and tail[-1].strip(" \t") == ""
        else:
            before_ok = False
        if nxt is None:
            after_ok = True
        elif isinstance(nxt, _Text):
            m = re.match(r"[ \t]*(\r?\n|$)", nxt.value)
            after_ok = bool(m) and (m is not None and (m.group(1) != "" or i + 2 == len(tokens)))
        else:
            after_ok = False
        if not (before_ok and after_ok):
            continue
        tok.standalone = True
        if isinstance(prev, _Text):
            cut = prev.value.rfind("\n") + 1
            prev.value = prev.value[:cut]
        if isinstance(nxt, _Text):
            nxt.value = re.sub(r"^[ \t]*(\r?\n)?", "", nxt.value, count=1)


# --- expression parser -----------------------------------------------------------------------
_EXPR_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<open>\()
      | (?P<close>\))
      | (?P<key>[A-Za-z_@$][\w$-]*)=
      | (?P<word>(?:\[[^\]]*\]|[^\s()=\[\]])+)
    )""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?\Z")


def _expr_tokens(body: str, line: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _EXPR_TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise HandlebarsError(f"cannot read expression {body!r}", line)
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind) or ""))
        pos = m.end()
    return out


def _path(word: str, line: int) -> Path:
    original = word
    data = word.startswith("@")
    if data:
        word = word[1:]
    depth = 0
    while word.startswith("../"):
        depth += 1
        word = word[3:]
    if word in ("this", ".", ""):
        return Path((), depth, data, original)
    if word.startswith("this.") or word.startswith("this/"):
        word = word[5:]
    elif word.startswith("./"):
        word = word[2:]
    parts = [p[1:-1] if p.startswith("[") else p for p in re.findall(r"\[[^\]]*\]|[^./]+", word)]
    if not parts:
        raise HandlebarsError(f"cannot read path {original!r}", line)
    return Path(tuple(parts), depth, data, original)


def _value(kind: str, text: str, line: int) -> Expr:
    if kind == "str":
        quote = text[0]
        inner = text[1:-1].replace("\\" + quote, quote).replace("\\\\", "\\")
        return Literal_(inner, text)
    if _NUMBER.match(text):
        return Literal_(float(text) if "." in text else int(text), text)
    if text in ("true", "false"):
        return Literal_(text == "true", text)
    if text in ("null", "undefined"):
        return Literal_(None, text)
    return _path(text, line)


def _call(tokens: list[tuple[str, str]], pos: int, line: int, closing: bool) -> tuple[Call, int]:
    params: list[Expr] = []
    hashes: list[tuple[str, Expr]] = []
    head: Expr | None = None
    while pos < len(tokens):
        kind, text = tokens[pos]
        if kind == "close":
            if not closing:
                raise HandlebarsError("unbalanced ')'", line)
            break
        key = None
        if kind == "key":
            key = text
            pos += 1
            if pos >= len(tokens):
                raise HandlebarsError(f"hash argument {key}= has no value", line)
            kind, text = tokens[pos]
        if kind == "open":
            sub, pos = _call(tokens, pos + 1, line, closing=True)
            if pos >= len(tokens) or tokens[pos][0] != "close":
                raise HandlebarsError("unclosed '('", line)
            value: Expr = SubExpr(sub)
        elif kind in ("str", "word"):
            value = _value(kind, text, line)
        else:
            raise HandlebarsError(f"unexpected {text!r}", line)
        pos += 1
        if key is not None:
            hashes.append((key, value))
        elif head is None:
            head = value
        else:
            params.append(value)
    if head is None:
        raise HandlebarsError("empty expression", line)
    return Call(head, tuple(params), tuple(hashes)), pos


def parse_call(body: str, line: int = 1) -> Call:
    tokens = _expr_tokens(body, line)
    call, pos = _call(tokens, 0, line, closing=False)
    if pos < len(tokens):
        raise HandlebarsError(f"unbalanced ')' in {body!r}", line)
    return call


# --- tree parser -----------------------------------------------------------------------------
class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.pos = 0

    def program(self, closer: _Tag | None) -> tuple[list[Node], _Tag | None]:
        """Nodes up to an ``else`` or a close tag (returned) or the end of the template."""
        nodes: list[Node] = []
        while self.pos < len(self.tokens):
            tok = self.tokens[self.pos]
            self.pos += 1
            if isinstance(tok, _Text):
                if tok.value:
                    nodes.append(Text(tok.value))
                continue
            if tok.kind in ("close", "else"):
                if closer is None:
                    raise HandlebarsError(f"{tok.source} without an opening block", tok.line)
                return nodes, tok
            if tok.kind == "comment":
                nodes.append(Comment(tok.body, tok.source, tok.line, tok.standalone))
            elif tok.kind == "partial":
                nodes.append(Partial(tok.source, tok.line, tok.standalone))
            elif tok.kind in ("mustache", "raw"):
                call = parse_call(tok.body, tok.line)
                nodes.append(Mustache(call, tok.kind == "mustache", tok.source, tok.line))
            else:
                nodes.append(self.block(tok))
        if closer is not None:
            raise HandlebarsError(f"{closer.source} is never closed", closer.line)
        return nodes, None

    def block(self, opener: _Tag, chained: bool = False) -> Block:
        call = parse_call(opener.body, opener.line)
        block = Block(
            call=call,
            inverted=opener.kind == "inverse",
            program=[],
            inverse=None,
            source=opener.source,
            line=opener.line,
            chained=chained,
            open_standalone=opener.standalone,
        )
        block.program, end = self.program(opener)
        assert end is not None
        if end.kind == "else":
            block.else_source, block.else_standalone = end.source, end.standalone
            if end.body:  # {{else if x}}: a block in the inverse, closed by our close tag
                nested = _Tag("open", end.body, end.source, end.line, False, False, end.standalone)
                inner = self.block(nested, chained=True)
                block.inverse = [inner]
                block.close_source, block.close_standalone = (
                    inner.close_source,
                    inner.close_standalone,
                )
                self._check_close(block, inner.close_source)
                return block
            block.inverse, end = self.program(opener)
            assert end is not None
            if end.kind == "else":
                raise HandlebarsError(f"a second {{{{else}}}} in {opener.source}", end.line)
        block.close_source, block.close_standalone = end.source, end.standalone
        if not chained:
            self._check_close(block, end.source, end.body)
        return block

    def _check_close(self, block: Block, source: str, name: str | None = None) -> None:
        if name is None:
            m = re.match(r"\{\{~?\s*/\s*([^\s~}]+)", source)
            name = m.group(1) if m else ""
        opened = block.call.head.original if isinstance(block.call.head, Path) else ""
        if name != opened:
            raise HandlebarsError(f"{block.source} closed by {source}", block.line)


def parse(source: str) -> list[Node]:
    """The tree of a Handlebars template; raises :class:`HandlebarsError`."""
    tokens = _lex(source)
    _whitespace(tokens)
    nodes, _ = _Parser(tokens).program(None)
    return nodes
