"""LINE message objects: rendering a JSON template safely and checking LINE's rules.

A LINE template may be a JSON file (``<locale>/line.json``) holding one message object or
a list of up to five: Flex (bubble or carousel), image, imagemap or template (buttons,
confirm, carousel) messages, or text, each with an optional ``quickReply``. Jinja2
placeholders are allowed in *string values only*: the JSON is parsed first, then every
string value is rendered on its own and put back into the structure, so rendered text
can never change the JSON's shape (a quote or brace in a customer's name stays text).
Keys are never rendered.

The rules below are LINE's, from the Messaging API reference
(https://developers.line.biz/en/reference/messaging-api/#message-objects, "Flex Message",
"Template messages", "Imagemap message", "Quick reply", "Action objects") and its OpenAPI
description (github.com/line/line-openapi, ``messaging-api.yml``: ``maxItems: 5`` messages,
``maxItems: 500`` multicast recipients, ``maxItems: 13`` quick reply items). They are
checked twice: on the template as written (:func:`template_problems`, strings holding
Jinja2 markup are checked for shape only) and on the rendered messages before any send
(:func:`message_problems`). A problem names its path: ``messages[0].contents.contents[12]:
...``.

Lengths are counted as LINE counts them ("Character counting in a text",
https://developers.line.biz/en/docs/messaging-api/text-character-count): in UTF-16 code
units (:func:`line_length`: an emoji outside the BMP such as 🍎 counts 2), except the
properties LINE counts in grapheme clusters (action labels, a message action's text, the
buttons, confirm and carousel templates' title and text), counted here in code points: never
fewer than LINE's grapheme clusters, so never a text LINE refuses (a skin-toned or flag
emoji, one cluster, counts 2 here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

# --- LINE's limits (Messaging API reference, see the module docstring) ------------------
MAX_MESSAGES = 5  # message objects per push / multicast request
MAX_MULTICAST_RECIPIENTS = 500  # user ids per multicast request
MAX_TEXT = 5000  # text message (UTF-16 code units, as every length unless said otherwise)
MAX_ALT_TEXT = 1500  # altText of flex, imagemap and template messages
MAX_URL = 2000  # image URLs (originalContentUrl, previewImageUrl, baseUrl, icon...)
MAX_URI = 1000  # uri of a URI action
MAX_BUBBLES = 12  # bubbles in a Flex carousel
MAX_BUBBLE_BYTES = 30 * 1024  # JSON of one Flex bubble
MAX_CAROUSEL_BYTES = 50 * 1024  # JSON of one Flex carousel
MAX_QUICK_REPLY_ITEMS = 13
MAX_QUICK_REPLY_LABEL = 20
MAX_ACTION_LABEL = 20  # template message buttons
MAX_BUTTONS_ACTIONS = 4
MAX_BUTTONS_TITLE = 40
MAX_BUTTONS_TEXT = 160  # 60 with an image or a title
MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE = 60
MAX_CONFIRM_TEXT = 240
MAX_TEMPLATE_COLUMNS = 10  # template carousel / image carousel columns
MAX_COLUMN_ACTIONS = 3
MAX_IMAGEMAP_ACTIONS = 50
MAX_POSTBACK_DATA = 300

MESSAGE_TYPES = frozenset({"text", "image", "imagemap", "template", "flex"})
URI_SCHEMES = ("https://", "http://", "tel:", "line://")
ACTION_TYPES = frozenset(
    {"uri", "message", "postback", "datetimepicker", "camera", "cameraRoll", "location",
     "richmenuswitch", "clipboard"}
)  # fmt: skip
_JINJA = re.compile(r"\{\{|\{%|\{#")


class LineMessageError(ValueError):
    """Messages LINE would refuse; ``problems`` lists each with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def line_length(text: str) -> int:
    """``text``'s length as LINE counts it: UTF-16 code units (a character outside the BMP,
    an emoji or a rare kanji, counts 2). A lone surrogate counts 1."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def has_markup(value: str) -> bool:
    return bool(_JINJA.search(value))


def parse_template(source: str) -> list[Any]:
    """A ``line.json`` as a list of message objects (one object counts as a list of one).
    Raises :class:`LineMessageError` on JSON that does not parse or is not objects."""
    try:
        data = json.loads(source)
    except ValueError as err:
        raise LineMessageError([f"line.json is not JSON: {err}"]) from None
    messages = data if isinstance(data, list) else [data]
    return messages


def render_strings(
    value: Any,
    render: Callable[[str, str], str],
    path: str = "messages",
    *,
    renders: Callable[[str], bool] = has_markup,
) -> Any:
    """``value`` with every string value that ``renders`` picks replaced by
    ``render(string, path)``; keys, numbers, booleans, the other strings and the structure
    itself are copied unchanged (never text pasted into JSON). The JSON templates' one walk:
    ``line.json`` and ``webhook.json`` (kizuna.delivery.templates)."""
    if isinstance(value, str):
        return render(value, path) if renders(value) else value
    if isinstance(value, list):
        return [
            render_strings(v, render, f"{path}[{i}]", renders=renders) for i, v in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            k: render_strings(v, render, f"{path}.{k}", renders=renders) for k, v in value.items()
        }
    return value


def json_size(value: Any) -> int:
    """Bytes of ``value`` as LINE receives it (compact UTF-8 JSON)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def template_problems(messages: Any) -> list[str]:
    """LINE's rules broken by a template as written (strings with Jinja2 markup are checked
    after rendering only)."""
    return _Checker(rendered=False).messages(messages)


def message_problems(messages: Any) -> list[str]:
    """LINE's rules broken by rendered messages: empty when LINE would accept them."""
    return _Checker(rendered=True).messages(messages)


def check_messages(messages: Any) -> None:
    problems = message_problems(messages)
    if problems:
        raise LineMessageError(problems)


class _Checker:
    def __init__(self, *, rendered: bool) -> None:
        self.rendered = rendered
        self.problems: list[str] = []

    # -- helpers --------------------------------------------------------------------------
    def fail(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def _final(self, value: Any) -> bool:
        """Whether a string's value can be judged now (no markup left to render)."""
        return self.rendered or not (isinstance(value, str) and has_markup(value))

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        max_len: int,
        graphemes: bool = False,
    ) -> str | None:
        """The string at ``key`` when it can be judged now. Its length is in UTF-16 code
        units, or for a property LINE counts in grapheme clusters (``graphemes``) in code
        points (an upper bound of those)."""
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            if required:
                self.fail(where, "required")
            return None
        if not isinstance(value, str):
            self.fail(where, "must be a string")
            return None
        if self._final(value):
            if not value.strip() and required:
                self.fail(where, "must not be empty")
            elif (length := len(value) if graphemes else line_length(value)) > max_len:
                how = "" if length == len(value) else " (UTF-16 code units: an emoji counts 2)"
                self.fail(where, f"{length:,} characters{how}, over LINE's {max_len:,}")
        return value if self._final(value) else None

    def url(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool) -> None:
        """An image URL: https only, at most :data:`MAX_URL` characters."""
        value = self.string(obj, key, path, required=required, max_len=MAX_URL)
        if value is not None and not value.startswith("https://"):
            self.fail(f"{path}.{key}", "an image URL must be https")

    def uri(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool) -> None:
        value = self.string(obj, key, path, required=required, max_len=MAX_URI)
        if value is not None and not value.startswith(URI_SCHEMES):
            self.fail(f"{path}.{key}", "a URI must be https, http, tel or line")

    def obj(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        return value

    def items(self, value: Any, path: str, *, low: int, high: int, what: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return []
        if not low <= len(value) <= high:
            self.fail(path, f"{len(value)} {what}, LINE takes {low} to {high}")
        return value

    # -- messages -------------------------------------------------------------------------
    def messages(self, messages: Any) -> list[str]:
        listed = self.items(messages, "messages", low=1, high=MAX_MESSAGES, what="messages")
        for i, message in enumerate(listed):
            self.message(message, f"messages[{i}]")
        return self.problems

    def message(self, value: Any, path: str) -> None:
        message = self.obj(value, path)
        if message is None:
            return
        kind = message.get("type")
        if kind not in MESSAGE_TYPES:
            self.fail(f"{path}.type", f"one of {', '.join(sorted(MESSAGE_TYPES))}")
            return
        if kind == "text":
            self.string(message, "text", path, required=True, max_len=MAX_TEXT)
        elif kind == "image":
            self.url(message, "originalContentUrl", path, required=True)
            self.url(message, "previewImageUrl", path, required=True)
        else:
            self.string(message, "altText", path, required=True, max_len=MAX_ALT_TEXT)
            getattr(self, f"_{kind}")(message, path)
        if "quickReply" in message:
            self.quick_reply(message["quickReply"], f"{path}.quickReply")

    def quick_reply(self, value: Any, path: str) -> None:
        reply = self.obj(value, path)
        if reply is None:
            return
        items = self.items(
            reply.get("items"), f"{path}.items", low=1, high=MAX_QUICK_REPLY_ITEMS, what="items"
        )
        for i, item in enumerate(items):
            where = f"{path}.items[{i}]"
            found = self.obj(item, where)
            if found is None:
                continue
            if found.get("type") != "action":
                self.fail(f"{where}.type", "must be 'action'")
            if "imageUrl" in found:
                self.url(found, "imageUrl", where, required=True)
            self.action(found.get("action"), f"{where}.action", label=MAX_QUICK_REPLY_LABEL)

    def action(self, value: Any, path: str, *, label: int | None = MAX_ACTION_LABEL) -> None:
        action = self.obj(value, path)
        if action is None:
            return
        kind = action.get("type")
        if kind not in ACTION_TYPES:
            self.fail(f"{path}.type", f"unknown action type {kind!r}")
            return
        if label is not None:
            self.string(action, "label", path, required=False, max_len=label, graphemes=True)
        if kind == "uri":
            self.uri(action, "uri", path, required=True)
        elif kind == "message":
            self.string(action, "text", path, required=True, max_len=300, graphemes=True)
        elif kind == "postback":
            self.string(action, "data", path, required=True, max_len=MAX_POSTBACK_DATA)

    # -- flex -----------------------------------------------------------------------------
    def _flex(self, message: Mapping[str, Any], path: str) -> None:
        contents = self.obj(message.get("contents"), f"{path}.contents")
        if contents is None:
            return
        where = f"{path}.contents"
        if contents.get("type") == "bubble":
            self.bubble(contents, where)
        elif contents.get("type") == "carousel":
            bubbles = self.items(
                contents.get("contents"),
                f"{where}.contents",
                low=1,
                high=MAX_BUBBLES,
                what="bubbles",
            )
            for i, bubble in enumerate(bubbles):
                found = self.obj(bubble, f"{where}.contents[{i}]")
                if found is not None:
                    if found.get("type") != "bubble":
                        self.fail(f"{where}.contents[{i}].type", "a carousel holds bubbles")
                    self.bubble(found, f"{where}.contents[{i}]", alone=False)
            if self.rendered and json_size(contents) > MAX_CAROUSEL_BYTES:
                size = json_size(contents)
                self.fail(
                    where, f"carousel JSON {size:,} bytes, over LINE's {MAX_CAROUSEL_BYTES:,}"
                )
        else:
            self.fail(f"{where}.type", "'bubble' or 'carousel'")

    def bubble(self, bubble: Mapping[str, Any], path: str, *, alone: bool = True) -> None:
        if self.rendered and json_size(bubble) > MAX_BUBBLE_BYTES:
            size = json_size(bubble)
            self.fail(path, f"bubble JSON {size:,} bytes, over LINE's {MAX_BUBBLE_BYTES:,}")
        blocks = [b for b in ("header", "hero", "body", "footer") if b in bubble]
        if not blocks:
            self.fail(path, "a bubble needs a header, hero, body or footer")
        for block in blocks:
            self.component(bubble[block], f"{path}.{block}")
        if "action" in bubble:
            self.action(bubble["action"], f"{path}.action", label=None)

    def component(self, value: Any, path: str) -> None:
        component = self.obj(value, path)
        if component is None:
            return
        kind = component.get("type")
        if kind == "box":
            children = component.get("contents")
            if not isinstance(children, list):
                self.fail(f"{path}.contents", "a box holds a list of components")
                children = []
            for i, child in enumerate(children):
                self.component(child, f"{path}.contents[{i}]")
        elif kind in ("text", "span"):
            if kind == "span" or "contents" not in component:
                self.string(component, "text", path, required=True, max_len=MAX_TEXT)
            else:
                for i, span in enumerate(component.get("contents") or []):
                    self.component(span, f"{path}.contents[{i}]")
        elif kind in ("image", "icon"):
            self.url(component, "url", path, required=True)
        elif kind == "video":
            self.url(component, "url", path, required=True)
            self.url(component, "previewUrl", path, required=True)
        elif kind == "button":
            self.action(component.get("action"), f"{path}.action", label=40)
        elif kind not in ("separator", "filler"):
            self.fail(f"{path}.type", f"unknown Flex component {kind!r}")
        if "action" in component and kind != "button":
            self.action(component["action"], f"{path}.action", label=None)

    # -- template messages ----------------------------------------------------------------
    def _template(self, message: Mapping[str, Any], path: str) -> None:
        where = f"{path}.template"
        template = self.obj(message.get("template"), where)
        if template is None:
            return
        kind = template.get("type")
        if kind == "buttons":
            title = self.string(
                template, "title", where, required=False, max_len=MAX_BUTTONS_TITLE, graphemes=True
            )
            image = "thumbnailImageUrl" in template
            if image:
                self.url(template, "thumbnailImageUrl", where, required=True)
            short = image or title is not None or "title" in template
            limit = MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE if short else MAX_BUTTONS_TEXT
            self.string(template, "text", where, required=True, max_len=limit, graphemes=True)
            actions = self.items(
                template.get("actions"),
                f"{where}.actions",
                low=1,
                high=MAX_BUTTONS_ACTIONS,
                what="actions",
            )
            for i, action in enumerate(actions):
                self.action(action, f"{where}.actions[{i}]")
        elif kind == "confirm":
            self.string(
                template, "text", where, required=True, max_len=MAX_CONFIRM_TEXT, graphemes=True
            )
            actions = self.items(
                template.get("actions"), f"{where}.actions", low=2, high=2, what="actions"
            )
            for i, action in enumerate(actions):
                self.action(action, f"{where}.actions[{i}]")
        elif kind in ("carousel", "image_carousel"):
            columns = self.items(
                template.get("columns"),
                f"{where}.columns",
                low=1,
                high=MAX_TEMPLATE_COLUMNS,
                what="columns",
            )
            for i, column in enumerate(columns):
                col = self.obj(column, f"{where}.columns[{i}]")
                if col is None:
                    continue
                cpath = f"{where}.columns[{i}]"
                if kind == "image_carousel":
                    self.url(col, "imageUrl", cpath, required=True)
                    self.action(col.get("action"), f"{cpath}.action", label=12)
                    continue
                if "thumbnailImageUrl" in col:
                    self.url(col, "thumbnailImageUrl", cpath, required=True)
                self.string(
                    col, "title", cpath, required=False, max_len=MAX_BUTTONS_TITLE, graphemes=True
                )
                short = "thumbnailImageUrl" in col or "title" in col
                limit = 60 if short else 120
                self.string(col, "text", cpath, required=True, max_len=limit, graphemes=True)
                acts = self.items(
                    col.get("actions"),
                    f"{cpath}.actions",
                    low=1,
                    high=MAX_COLUMN_ACTIONS,
                    what="actions",
                )
                for j, action in enumerate(acts):
                    self.action(action, f"{cpath}.actions[{j}]")
        else:
            self.fail(f"{where}.type", "'buttons', 'confirm', 'carousel' or 'image_carousel'")

    # -- imagemap -------------------------------------------------------------------------
    def _imagemap(self, message: Mapping[str, Any], path: str) -> None:
        self.url(message, "baseUrl", path, required=True)
        size = self.obj(message.get("baseSize"), f"{path}.baseSize")
        if size is not None:
            if size.get("width") != 1040:
                self.fail(f"{path}.baseSize.width", "must be 1040")
            height = size.get("height")
            if not isinstance(height, int) or isinstance(height, bool) or height < 1:
                self.fail(f"{path}.baseSize.height", "a positive integer")
        actions = self.items(
            message.get("actions"),
            f"{path}.actions",
            low=1,
            high=MAX_IMAGEMAP_ACTIONS,
            what="actions",
        )
        for i, action in enumerate(actions):
            where = f"{path}.actions[{i}]"
            found = self.obj(action, where)
            if found is None:
                continue
            kind = found.get("type")
            if kind == "uri":
                self.uri(found, "linkUri", where, required=True)
            elif kind == "message":
                self.string(found, "text", where, required=True, max_len=400)
            elif kind != "clipboard":
                self.fail(f"{where}.type", "'uri', 'message' or 'clipboard'")
            if not isinstance(found.get("area"), dict):
                self.fail(f"{where}.area", "required")


__all__ = [
    "MAX_MESSAGES",
    "MAX_MULTICAST_RECIPIENTS",
    "LineMessageError",
    "check_messages",
    "json_size",
    "line_length",
    "message_problems",
    "parse_template",
    "render_strings",
    "template_problems",
]
