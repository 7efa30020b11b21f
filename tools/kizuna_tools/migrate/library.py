"""The project's Pinpoint templates, translated once, and the files a campaign or a program
gets from them.

Pinpoint templates are shared by name; Kizuna keeps a program's or a campaign's templates in
its own folder (``templates/<owner>/<template>/<locale>/<part>.j2``). So every Pinpoint
template is translated once (:func:`kizuna_tools.migrate.templates.translate_template`:
Handlebars to Jinja2, its locale from its name or tags) and copied into the folder of each
owner that sends it. Templates of one base name in several locales (``WinterSale_ja``,
``WinterSale_en``) are one Kizuna template with both locale folders; the email, SMS and push
templates one message uses are the parts of one Kizuna template.

A campaign's inline message (``MessageConfiguration``: its own subject and body, no template)
is translated the same way, as a template in the project's default locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna_tools.migrate.report import Item, Report, Status
from kizuna_tools.migrate.templates import RESPONSE_KEYS, TEMPLATE_TYPES, TemplateResult

# Message members (a campaign's push message) -> the push template's members
_PUSH_DEFAULT = ("Action", "Body", "Title", "Url")
_PUSH_APNS = ("Action", "Body", "MediaUrl", "RawContent", "Title", "Url")
_PUSH_ANDROID = ("Action", "Body", "ImageIconUrl", "ImageUrl", "RawContent", "Title", "Url")


@dataclass
class Translated:
    """One Pinpoint template (or inline message) translated: the ``TemplateResult``."""

    kind: str
    pinpoint: str
    result: TemplateResult

    @property
    def template(self) -> str:
        return str(self.result.template)

    @property
    def locale(self) -> str:
        return str(self.result.locale)

    @property
    def files(self) -> dict[str, str]:
        return dict(self.result.files)


@dataclass
class Library:
    """Every translated template by (kind, Pinpoint name), and the files each owner gets."""

    translate: Callable[..., Any]
    default_locale: str
    naming: Callable[[str], str]
    report: Report
    by_name: dict[tuple[str, str], Translated] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=dict)  # owner -> path -> text
    inlines: list[Translated] = field(default_factory=list)  # campaigns' own messages
    _items: dict[tuple[str, str], Item] = field(default_factory=dict)

    def add(self, kind: str, name: str, response: Mapping[str, Any], source: str) -> None:
        """Translate one Get*Template response (its file is ``source``)."""
        try:
            result = self.translate(
                kind, name, response, default_locale=self.default_locale, naming=self.naming
            )
        except ValueError as exc:
            self.report.add("template", f"{kind} {name}", Status.NOT_MIGRATED, notes=[str(exc)])
            return
        self.by_name[(kind, name)] = Translated(kind, name, result)
        item = self.report.add("template", f"{kind} {name}", Status.MIGRATED, pinpoint_id=source)
        _notes(item, result)
        self._items[(kind, name)] = item

    def inline(
        self, kind: str, name: str, message: Mapping[str, Any], locale: str | None = None
    ) -> Translated | None:
        """Translate a campaign's inline message of ``kind`` (None: it has no content)."""
        body = inline_response(kind, name, message)
        if body is None:
            return None
        result = self.translate(
            kind, name, body, default_locale=locale or self.default_locale, naming=self.naming
        )
        result.notes = [n for n in result.notes if "no locale in its name" not in str(n)]
        translated = Translated(kind, name, result)
        self.inlines.append(translated)
        return translated

    def attribute_paths(self) -> list[tuple[str, str]]:
        """(Kizuna attribute name, Pinpoint path) of every custom attribute a translated
        template or message reads (``Attributes.PromoBanner``...)."""
        found: list[tuple[str, str]] = []
        for translated in [*self.by_name.values(), *self.inlines]:
            found += sorted(translated.result.attributes.items())
        return found

    def group(self, kind: str, name: str) -> list[Translated]:
        """The named template and its siblings in the other locales (same Kizuna template)."""
        one = self.by_name.get((kind, name))
        if one is None:
            return []
        return [
            t
            for (k, _n), t in sorted(self.by_name.items())
            if k == kind and t.template == one.template
        ]

    def use(self, owner: str, template: str, parts: list[Translated], where: str) -> list[str]:
        """Copy ``parts`` into ``templates/<owner>/<template>/``; problems (two sources
        writing one file differently)."""
        files = self.owners.setdefault(owner, {})
        problems = []
        for part in parts:
            for rel, text in part.files.items():
                key = f"{owner}/{template}/{rel}"
                if key in files and files[key] != text:
                    problems.append(f"{where}: two templates write {key}")
                    continue
                files[key] = text
            item = self._items.get((part.kind, part.pinpoint))
            if item is not None:
                became = f"templates/{owner}/{template}/"
                if became not in item.became:
                    item.became.append(became)
        return problems

    def pending(self, kind: str, name: str) -> list[str]:
        """What a person must still do in a template (its TODOs and decisions)."""
        item = self._items.get((kind, name))
        return list(item.decisions) if item is not None else []

    def unused(self) -> list[Item]:
        return [item for item in self._items.values() if not item.became]

    def write(self, out: Path) -> list[Path]:
        written = []
        for files in self.owners.values():
            for key, text in sorted(files.items()):
                path = out / "templates" / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                written.append(path)
        return written


def _notes(item: Item, result: TemplateResult) -> None:
    """A TemplateResult's notes and TODOs on its report item."""
    for note in result.notes:
        item.tell(note.level, note.message)
    for todo in result.todos:
        if not any(str(todo.source) in d for d in item.decisions):  # not said yet
            item.decide(f"TODO left in the template: {todo}")


def inline_response(kind: str, name: str, message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A campaign's message of ``kind`` as the Get*Template response it would have been."""
    body: dict[str, Any] = {
        "TemplateName": name,
        "TemplateType": TEMPLATE_TYPES[kind],
        "CreationDate": "1970-01-01T00:00:00Z",
        "LastModifiedDate": "1970-01-01T00:00:00Z",
    }
    if kind == "email":
        email = message.get("EmailMessage") or {}
        parts = {"Subject": "Title", "HtmlPart": "HtmlBody", "TextPart": "Body"}
        body.update({k: email[v] for k, v in parts.items() if email.get(v)})
        if "HtmlPart" not in body and "TextPart" not in body:
            return None
    elif kind == "sms":
        sms = message.get("SMSMessage") or {}
        if not sms.get("Body"):
            return None
        body["Body"] = sms["Body"]
    else:
        found = False
        for member, fields, source in (
            ("Default", _PUSH_DEFAULT, "DefaultMessage"),
            ("APNS", _PUSH_APNS, "APNSMessage"),
            ("GCM", _PUSH_ANDROID, "GCMMessage"),
        ):
            msg = message.get(source) or {}
            picked = {f: msg[f] for f in fields if msg.get(f) not in (None, "")}
            if picked.get("Body") or picked.get("RawContent"):
                body[member] = picked
                found = True
        if not found:
            return None
    return {RESPONSE_KEYS[kind]: body}


def message_kinds(message: Mapping[str, Any], templates: Mapping[str, Any]) -> list[str]:
    """The Kizuna channels a campaign (or treatment) sends on, email first."""
    kinds = []
    if (templates.get("EmailTemplate") or {}).get("Name") or inline_response("email", "x", message):
        kinds.append("email")
    if (templates.get("SMSTemplate") or {}).get("Name") or inline_response("sms", "x", message):
        kinds.append("sms")
    if (templates.get("PushTemplate") or {}).get("Name") or inline_response("push", "x", message):
        kinds.append("push")
    return kinds
