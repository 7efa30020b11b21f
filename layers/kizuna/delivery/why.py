"""The plain-language "why" of one ledger row, in Japanese and English.

A customer's ledger (the activity table) holds every decision Kizuna made about them:
``ENTRY#`` (a program's entry: entered, held out, skipped and why), ``CONV#`` (a
conversion), ``MSG#`` (a message of a journey or a campaign: sent on which channel,
suppressed by which rule, deferred until when, failed), ``STEP#`` (a journey member's
branch side, split arm or local-time instant) and ``JOURNEY#`` (the customer's history with
a program). :func:`explain` turns one row, as stored, into a :class:`Why`: what kind of row,
its outcome, its reason code and a sentence. Pure: no AWS, no clock; unknown codes and rows
written before a reason carried its detail still get a sentence (a more general one).

The rows' shapes and every reason code are listed in docs/PROGRAMS.md ("The ledger's
reasons"); docs/CONSOLE.md ("Why") lists the sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from kizuna.delivery.ledger import OUTCOME_UNKNOWN_NOTE
from kizuna.domain.timestamps import parse_time
from kizuna.domain.zones import zone_or

Lang = Literal["ja", "en"]
LANGS: Final[tuple[Lang, ...]] = ("ja", "en")


@dataclass(frozen=True)
class Why:
    """``kind``: entry, conversion, message, campaign_message, step, journey or unknown;
    ``outcome``: the row's decision or status (entered, holdout, skipped, converted, sent,
    sending, suppressed, deferred, failed, exit, then, else, arm, until, in_program...);
    ``reason``: the reason code as recorded (None if the row has none); ``text``: one
    sentence in the language asked for."""

    kind: str
    outcome: str
    reason: str | None
    text: str


# -- words ---------------------------------------------------------------------------------
# (en, ja) for each code; a sentence is built from these and the row's data.
Text = tuple[str, str]

CHANNELS: Final[dict[str, Text]] = {
    "email": ("email", "メール"),
    "sms": ("SMS", "SMS"),
    "push": ("push", "プッシュ通知"),
    "line": ("LINE", "LINE"),
    "webhook": ("webhook", "Webhook"),
    "card": ("card", "カード（サイト・アプリ内）"),
    "dm": ("direct mail", "ダイレクトメール"),
}

# Why a channel was passed over (the ``skipped`` list of a message row, ``channel:why``)
CHANNEL_BLOCKS: Final[dict[str, Text]] = {
    "no_address": ("no address", "宛先なし"),
    "no_consent": ("not consented", "同意なし"),
    "opted_out": ("opted out", "配信停止の申し出あり"),
    "channel_not_configured": ("not configured", "未設定"),
    "suppressed_bounce": ("suppressed after a bounce", "バウンスにより停止"),
    "suppressed_complaint": ("suppressed after a complaint", "苦情により停止"),
    "suppressed_opt_out": ("opted out (STOP reply)", "配信停止 (STOP 返信)"),
    "topic_opted_out": ("opted out of this topic", "このトピックの配信停止の申し出あり"),
}
SUPPRESSED_PREFIX: Final = "suppressed_"  # suppressed_<the suppression's reason>

FIELDS: Final[dict[str, Text]] = {
    "lifecycle": ("lifecycle", "ライフサイクル"),
    "rank": ("rank", "ランク"),
    "next_rank": ("next rank", "次のランク"),
    "rank_points": ("rank points", "ランクポイント"),
    "points_to_next_rank": ("points to the next rank", "次のランクまでのポイント"),
    "points_balance": ("points balance", "ポイント残高"),
    "order_count": ("order count", "注文回数"),
    "lifetime_value": ("lifetime value", "累計購入額"),
    "spend_12m": ("12-month spend", "12か月の購入額"),
    "days_since_last_order": ("days since the last order", "最終注文からの日数"),
    "region": ("region", "地域"),
    "prefecture": ("prefecture", "都道府県"),
    "gender": ("gender", "性別"),
    "occupation": ("occupation", "職業"),
    "locale": ("locale", "言語"),
    "time_zone": ("time zone", "タイムゾーン"),
    "age": ("age", "年齢"),
    "age_band": ("age band", "年齢層"),
    "reachable": ("reachable channels", "届けられるチャネル"),
    "cart_items": ("cart items", "カートの商品数"),
    "rfm_segment": ("RFM segment", "RFM セグメント"),
    "segments": ("segments", "セグメント"),
    "consent": ("consent", "同意"),
    "customer_id": ("customer id", "顧客 ID"),
}

_NUMERIC: Final[dict[str, Text]] = {
    ">=": ("at least {n}", "{n} 以上"),
    ">": ("more than {n}", "{n} より大きい"),
    "<=": ("at most {n}", "{n} 以下"),
    "<": ("less than {n}", "{n} 未満"),
    "=": ("exactly {n}", "{n}"),
}
_OPERATORS: Final[dict[str, Text]] = {
    "prefix": ("starting with {v}", "{v} で始まる"),
    "suffix": ("ending with {v}", "{v} で終わる"),
    "equals-ignore-case": ("{v} (any case)", "{v} (大文字小文字を問わない)"),
    "wildcard": ("matching {v}", "{v} に一致"),
    "anything-but": ("anything but {v}", "{v} 以外"),
    "cidr": ("in {v}", "{v} の範囲"),
}

# Every reason code a ledger row may carry, with its sentence (en, ja) where the sentence
# does not depend on the row's detail. ``{...}`` fields are filled from the row.
REASONS: Final[dict[str, Text]] = {
    # ENTRY# skipped
    "audience": (
        "Not entered: the customer is not in the program's audience.",
        "対象外: プログラムの対象条件に合いません。",
    ),
    "reentry_once": (
        "Not entered: the program is once per customer, and this customer already entered{last}.",
        "対象外: このプログラムは 1 人 1 回までで、この顧客は参加済みです{last}。",
    ),
    "reentry_window": (
        "Not entered: the program may be re-entered every {days} days; the last entry was{last}.",
        "対象外: 再参加は {days} 日ごとで、前回の参加は{last}です。",
    ),
    "no_channel": (
        "Not entered: no channel of the program can reach this customer{channels}.",
        "対象外: プログラムのチャネルではこの顧客に届けられません{channels}。",
    ),
    "unknown_customer": (
        "Not decided: the customer is unknown.",
        "判断不可: 顧客が見つかりません。",
    ),
    "claim_not_in_state": (
        "Not entered: what the event {trigger} claims is not in the customer's stored state.",
        "対象外: イベント {trigger} の内容が顧客の保存状態と一致しません。",
    ),
    # ENTRY# holdout, CONV#, campaign MSG# holdout
    "holdout": (
        "Held out ({which} holdout{detail}).",
        "ホールドアウト ({which}のホールドアウト{detail})。",
    ),
    # ENTRY# holdout, campaign MSG# holdout of a global control customer
    "global_control": (
        "Held out: this customer is in the global control group ({percent}% of customers, "
        "no marketing message from any program or campaign{detail}).",
        "ホールドアウト: この顧客はグローバルコントロール群です (顧客の {percent}%、"
        "どのプログラム・キャンペーンからもマーケティングメッセージを送りません{detail})。",
    ),
    # MSG# suppressed
    "frequency_cap_day": (
        "Not sent: frequency cap {limit} per day reached ({count} sent).",
        "未送信: 1 日 {limit} 通の配信上限に達しました ({count} 通送信済み)。",
    ),
    "frequency_cap_week": (
        "Not sent: frequency cap {limit} per {days} days reached ({count} sent).",
        "未送信: {days} 日間 {limit} 通の配信上限に達しました ({count} 通送信済み)。",
    ),
    "topic_opted_out": (
        "Not sent: the customer opted out of the topic {topic} on every usable channel{b}.",
        "未送信: 顧客は使えるすべてのチャネルでトピック {topic} の配信を停止しています{b}。",
    ),
    "paused": (
        "Not sent: the customer paused every non-transactional message until {until}.",
        "未送信: 顧客が {until} まで取引関連以外のすべての配信を一時停止しています。",
    ),
    # MSG# deferred
    "quiet_hours": (
        "Deferred until {until} (quiet hours{window}).",
        "{until} まで延期 (配信停止時間帯{window})。",
    ),
    "local_time_moved": (
        "Deferred until {until}: the customer's time zone changed since they entered, and "
        "the program's first local time had not come yet in their new zone.",
        "{until} まで延期: 参加後に顧客のタイムゾーンが変わり、新しいタイムゾーンでは"
        "プログラムの最初の指定時刻がまだ来ていませんでした。",
    ),
    "contact_contended": (
        "Deferred until {until}: other messages were being sent to the customer at the same "
        "moment (the frequency caps are checked again then).",
        "{until} まで延期: 同じ時刻にこの顧客へ他のメッセージを送信中でした "
        "(その時点で配信上限を再確認します)。",
    ),
    "out_of_time": (
        "Deferred until {until}: the send ran out of time before reaching this message (a "
        "large group, a slow channel); it is decided and sent again from then (a campaign: "
        "with its next pass).",
        "{until} まで延期: 送信処理の時間内にこのメッセージまで届きませんでした "
        "(大きなグループ、または応答の遅いチャネル)。その時点以降に再判定して送信します "
        "(キャンペーンは次のパスで)。",
    ),
    # MSG# exit
    "goal_reached": (
        "Not sent: the customer reached the program's goal{at} and left the journey.",
        "未送信: 顧客がプログラムのゴールに到達したため{at}、ジャーニーを終了しました。",
    ),
    # MSG# failed
    "step_failed": (
        "Not sent: the send step failed after every retry.",
        "未送信: 送信ステップが再試行後も失敗しました。",
    ),
    "unreadable_customer": (
        "Not sent: this version of Kizuna cannot read the customer's stored record "
        "(a value it refuses); the other recipients were not affected.",
        "未送信: このバージョンの Kizuna では顧客の保存データを読み取れません "
        "(受け付けない値があります)。他の宛先には影響していません。",
    ),
    "not_dispatched": (
        "Not sent: the message never reached the provider (settled by reconciliation); "
        "a retry of the same request or a redrive of its execution sends it, once: "
        "do not send it again under a new key.",
        "未送信: メッセージは配信事業者に渡りませんでした (照合で確定)。"
        "同じリクエストの再試行または実行の再実行 (redrive) で 1 回だけ送信されます。"
        "新しいキーで送り直さないでください。",
    ),
    "outcome_unknown": (
        "Outcome unknown: the provider may have taken the message{channel}; "
        "it is never sent again.",
        "結果不明: 配信事業者が受け取った可能性があります{channel}。再送はしません。",
    ),
    "render_error": (
        "Not sent: the template could not be rendered{detail}.",
        "未送信: テンプレートを表示できませんでした{detail}。",
    ),
    "in_flight": (
        "Being sent by another invocation.",
        "別の呼び出しが送信中です。",
    ),
    # MSG# sent, settled by the reconciliation sweep
    "reconciled": (
        "Sent by {channel} (confirmed by reconciliation).",
        "{channel}で送信しました (照合で確認)。",
    ),
    # STEP# else of an engagement branch (kizuna.programs.engagement)
    "not_sent": (
        "Branch {step}: the other side (else): step {of} sent this customer no message{status}.",
        "分岐 {step}: else 側へ: ステップ {of} ではこの顧客にメッセージを送っていません{status}。",
    ),
    "not_engaged": (
        "Branch {step}: the other side (else): {what}.",
        "分岐 {step}: else 側へ: {what}。",
    ),
    "not_measured": (
        "Branch {step}: the other side (else): the message of step {of}{sent} went with none "
        "of its links tracked (to a host the configuration does not track, a phone, mail or "
        "LINE app link, in an action, or too long for LINE with them tracked): whether a link "
        "was clicked could not be seen.",
        "分岐 {step}: else 側へ: ステップ {of} のメッセージ{sent}は計測できるリンクなしで送信"
        "されました (計測対象外のホストへのリンク、電話・メール・LINE アプリのリンク、アクションの"
        "リンク、または計測用リンクにすると LINE の上限を超えるため)。"
        "クリックの有無は確認できません。",
    ),
    # STEP# exit at a step a redeploy renamed or removed (kizuna.services.cohort)
    "step_removed": (
        "Step {step}: left the journey: the program was redeployed without a step {step} "
        "(renamed or removed) while the customer was at it; nothing was sent for it.",
        "ステップ {step}: ジャーニーを終了: 顧客がこのステップにいる間に、ステップ {step} の"
        "ないプログラム (名前の変更または削除) がデプロイされました。このステップでは何も"
        "送信していません。",
    ),
    # STEP# exit at a step a redeploy gave another type under the same id
    "step_changed": (
        "Step {step}: left the journey: the program was redeployed with a step {step} of "
        "another type while the customer was at it; nothing was sent for it.",
        "ステップ {step}: ジャーニーを終了: 顧客がこのステップにいる間に、ステップ {step} の"
        "種類を変えたプログラムがデプロイされました。このステップでは何も送信していません。",
    ),
}
RENDER_ERROR_PREFIX: Final = "render_error: "


def known_reason(reason: str) -> bool:
    """Whether ``reason`` has a sentence of its own (else a general one is used): the codes
    of :data:`REASONS`, ``suppressed_<why>`` and ``render_error: <why>``."""
    return (
        reason in REASONS
        or reason.startswith(SUPPRESSED_PREFIX)
        or reason.startswith(RENDER_ERROR_PREFIX)
    )


# -- formatting ----------------------------------------------------------------------------
def _i(lang: Lang) -> int:
    return 0 if lang == "en" else 1


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal | float | int):
        d = Decimal(str(value))
        return str(int(d)) if d == d.to_integral_value() else f"{d.normalize():f}"
    return str(value)


def _value(value: Any, lang: Lang) -> str:
    if value is None:
        return ("empty", "空")[_i(lang)]
    if isinstance(value, list | tuple):
        if not value:
            return ("none", "なし")[_i(lang)]
        return ", ".join(_value(v, lang) for v in value)
    return _num(value)


def _or(parts: Sequence[str], lang: Lang) -> str:
    return (" or ", " または ")[_i(lang)].join(parts)


def _field(path: str, lang: Lang) -> str:
    head, _, rest = path.partition(".")
    label = FIELDS.get(head, (head.replace("_", " "), head))[_i(lang)]
    if rest:
        channel = CHANNELS.get(rest, (rest, rest))[_i(lang)]
        return f"{label} ({channel})"
    return label


def _matcher(m: Any, lang: Lang) -> str:
    i = _i(lang)
    if isinstance(m, Mapping) and m:
        if "exists" in m:
            return (("set", "値がある"), ("not set", "値がない"))[0 if m["exists"] else 1][i]
        op, arg = next(iter(m.items()))
        if op in _OPERATORS:
            if op == "anything-but" and isinstance(arg, Mapping) and arg:
                inner, v = next(iter(arg.items()))
                shown = _OPERATORS.get(inner, ("{v}", "{v}"))[i].format(v=_value(v, lang))
                return ("not {s}", "{s} 以外")[i].format(s=shown)
            return _OPERATORS[op][i].format(v=_value(arg, lang))
        joiner = (" and ", " かつ ")[i]
        return joiner.join(
            _NUMERIC.get(str(k), (f"{k} {{n}}", f"{k} {{n}}"))[i].format(n=_num(v))
            for k, v in m.items()
        )
    return _value(m, lang)


def _condition(failed: Mapping[str, Any], lang: Lang, *, short: bool = False) -> str:
    """One failed condition: ``{"field", "expected", "found"?}`` or ``{"any_of": [...]}``."""
    i = _i(lang)
    if "any_of" in failed:
        alternatives = [
            "(" + ("; ", "、")[i].join(_condition(f, lang, short=True) for f in alt) + ")"
            for alt in failed.get("any_of") or []
            if isinstance(alt, list)
        ]
        return (
            "one of {alts}, and none holds",
            "{alts} のいずれかを満たす顧客が対象ですが、この顧客はいずれも満たしません",
        )[i].format(alts=_or(alternatives, lang))
    path = str(failed.get("field", "?"))
    label = _field(path, lang)
    expected = failed.get("expected")
    found_value = failed.get("found")
    if path == "reachable":  # channel names, in the reader's words
        expected = [_channel(c, lang) if isinstance(c, str) else c for c in expected or []]
        if isinstance(found_value, list):
            found_value = [_channel(c, lang) for c in found_value]
    wanted = _or([_matcher(m, lang) for m in expected], lang) if isinstance(expected, list) else "?"
    has = "found" in failed and found_value != []
    found = _value(found_value, lang)
    if short:
        shown = found if has else ("none", "なし")[i]
        short_form = ("{label} {wanted}, found {found}", "{label}が {wanted}、実際は {found}")
        return short_form[i].format(label=label, wanted=wanted, found=shown)
    if has:
        return (
            "{label} {wanted}; this customer's {label} is {found}",
            "{label}が {wanted} の顧客が対象ですが、この顧客は {found} です",
        )[i].format(label=label, wanted=wanted, found=found)
    return (
        "{label} {wanted}; this customer has none",
        "{label}が {wanted} の顧客が対象ですが、この顧客には{label}がありません",
    )[i].format(label=label, wanted=wanted)


def _conditions(failed: Any, lang: Lang) -> str | None:
    if not isinstance(failed, list) or not failed:
        return None
    parts = [_condition(f, lang) for f in failed if isinstance(f, Mapping)]
    return (". It also needs ", "。また、")[_i(lang)].join(parts) if parts else None


def _zone(name: Any) -> ZoneInfo:
    return zone_or(name if isinstance(name, str) else None)


def _time(value: Any, tz: ZoneInfo) -> str | None:
    """An ISO instant of a row, as ``2026-12-01 09:00 JST`` in ``tz``."""
    if not value:
        return None
    try:
        at: datetime = parse_time(str(value)).astimezone(tz)
    except (TypeError, ValueError):
        return str(value)[:40]
    return f"{at:%Y-%m-%d %H:%M} {at.tzname()}"


def _channel(value: Any, lang: Lang) -> str:
    return CHANNELS.get(str(value), (str(value), str(value)))[_i(lang)]


def _blocks(row: Mapping[str, Any], lang: Lang) -> list[str]:
    """The channels passed over and why (``skipped``: ``["email:no_consent", ...]``)."""
    out = []
    for entry in row.get("skipped") or []:
        channel, _, block = str(entry).partition(":")
        out.append(f"{_channel(channel, lang)}: {_block(block, lang)}")
    return out


def _block(block: str, lang: Lang) -> str:
    if block in CHANNEL_BLOCKS:
        return CHANNEL_BLOCKS[block][_i(lang)]
    if block.startswith(SUPPRESSED_PREFIX):
        why = block[len(SUPPRESSED_PREFIX) :]
        return ("suppressed ({why})", "停止中 ({why})")[_i(lang)].format(why=why)
    return block


def channel_words(channel: str, lang: str) -> str:
    """A channel's name in ``lang`` (ja or en; anything else reads as en)."""
    return _channel(channel, "ja" if lang == "ja" else "en")


def block_words(block: str, lang: str) -> str:
    """Why a channel cannot reach a customer (``no_consent``...), in ``lang``."""
    return _block(block, "ja" if lang == "ja" else "en")


def _text(code: str, lang: Lang, **fields: Any) -> str:
    return REASONS[code][_i(lang)].format(**fields)


def _general(outcome: str, reason: str | None, lang: Lang) -> str:
    """A row whose outcome or reason has no sentence of its own."""
    i = _i(lang)
    if reason:
        shown = reason[:120]
        return ("{o}: {r}.", "{o}: {r}。")[i].format(o=_outcome_word(outcome, lang), r=shown)
    return ("{o}.", "{o}。")[i].format(o=_outcome_word(outcome, lang))


OUTCOMES: Final[dict[str, Text]] = {
    "entered": ("Entered", "参加"),
    "holdout": ("Held out", "ホールドアウト"),
    "skipped": ("Not entered", "対象外"),
    "converted": ("Converted", "コンバージョン"),
    "sent": ("Sent", "送信済み"),
    "sending": ("Sending", "送信中"),
    "suppressed": ("Not sent", "未送信"),
    "deferred": ("Deferred", "延期"),
    "failed": ("Failed", "失敗"),
    "exit": ("Left the journey", "ジャーニー終了"),
    "duplicate": ("Duplicate", "重複"),
}


def _outcome_word(outcome: str, lang: Lang) -> str:
    return OUTCOMES.get(outcome, (outcome or "?", outcome or "?"))[_i(lang)]


# -- rows ----------------------------------------------------------------------------------
def row_kind(row: Mapping[str, Any]) -> str:
    """ENTRY, CONV, MSG, STEP, JOURNEY... from ``kind`` or the sort key."""
    kind = row.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return str(row.get("sk", "")).split("#", 1)[0]


def explain(row: Mapping[str, Any], lang: str, *, time_zone: str | None = None) -> Why:
    """The why of one ledger row (as stored: DynamoDB's numbers as Decimal or not) in
    ``lang`` (``ja`` or ``en``); instants are shown in ``time_zone`` (default UTC), a
    quiet-hours deferral in the zone its quiet hours were read in."""
    if lang not in LANGS:
        raise ValueError(f"lang: must be one of {', '.join(LANGS)}")
    language: Lang = "ja" if lang == "ja" else "en"
    tz = _zone(time_zone)
    kind = row_kind(row)
    explainer = _EXPLAINERS.get(kind)
    if explainer is None:
        outcome = str(row.get("status") or row.get("decision") or "")
        reason = row.get("reason")
        return Why(
            "unknown",
            outcome,
            reason if isinstance(reason, str) else None,
            _general(outcome, reason if isinstance(reason, str) else None, language),
        )
    return explainer(row, language, tz)


def _entry(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> Why:
    decision = str(row.get("decision", ""))
    reason = row.get("reason") if isinstance(row.get("reason"), str) else None
    i = _i(lang)
    if decision == "entered":
        return Why(
            "entry", decision, reason, ("Entered the program.", "プログラムに参加しました。")[i]
        )
    if decision == "holdout":
        return Why("entry", decision, reason, _holdout(row, lang, "program"))
    if decision == "skipped":
        return Why("entry", decision, reason, _skipped(reason, row, lang, tz))
    return Why("entry", decision, reason, _general(decision, reason, lang))


def _skipped(reason: str | None, row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> str:
    i = _i(lang)
    if reason == "audience":
        failed = _conditions(row.get("failed"), lang)
        if failed is None:
            return _text("audience", lang)
        return ("Not entered: the audience needs {f}.", "対象外: {f}。")[i].format(f=failed)
    if reason in ("reentry_once", "reentry_window"):
        at = _time(row.get("last_entry_at"), tz)
        last = ((" on {at}", " ({at})"), (" {at}", " {at} "))[reason == "reentry_window"][i]
        shown = last.format(at=at) if at else ("", "")[i]
        if reason == "reentry_window" and not at:
            shown = (" recent", "最近")[i]
        days = row.get("reentry_days")
        return _text(reason, lang, last=shown, days=_num(days) if days is not None else "N")
    if reason == "no_channel":
        channels = row.get("channels")
        blocks = _blocks(row, lang)
        if blocks:
            extra = " ({b})".format(b="; ".join(blocks))
        elif isinstance(channels, list):
            listed = ", ".join(_channel(c, lang) for c in channels)
            reach = (
                ", ".join(_channel(c, lang) for c in row.get("reachable") or [])
                or (
                    "none",
                    "なし",
                )[i]
            )
            extra = (
                " (the program's: {c}; reachable: {r})",
                " (プログラムのチャネル: {c}、届けられるチャネル: {r})",
            )[i].format(c=listed, r=reach)
        else:
            extra = ""
        return _text("no_channel", lang, channels=extra)
    if reason == "claim_not_in_state":
        return _text(reason, lang, trigger=str(row.get("trigger_type", "")))
    if reason == "unknown_customer":
        return _text(reason, lang)
    return _general("skipped", reason, lang)


def _holdout(row: Mapping[str, Any], lang: Lang, default: str) -> str:
    i = _i(lang)
    if row.get("held_out") == "global_control" or row.get("reason") == "global_control":
        return _global_control(row, lang)
    which = str(row.get("held_out") or default)
    label = {"program": ("program", "プログラム"), "campaign": ("campaign", "キャンペーン")}.get(
        which, (which, which)
    )[i]
    detail = ""
    if row.get("holdout_percent") is not None:
        detail = " {p}%".format(p=_num(row["holdout_percent"]))
        if row.get("bucket") is not None:
            detail += (
                "; this customer's hash bucket is {b} of 100",
                "、この顧客のハッシュバケットは 100 中 {b}",
            )[i].format(b=_num(row["bucket"]))
    return _text("holdout", lang, which=label, detail=detail)


def _global_control(row: Mapping[str, Any], lang: Lang) -> str:
    i = _i(lang)
    percent = row.get("global_control_percent")
    parts: list[str] = []
    if row.get("global_control_since"):
        parts.append(("since {d}", "{d} から")[i].format(d=row["global_control_since"]))
    if row.get("bucket") is not None:
        parts.append(
            (
                "this customer's hash bucket is {b} of 100",
                "この顧客のハッシュバケットは 100 中 {b}",
            )[i].format(b=_num(row["bucket"]))
        )
    detail = ("; " + "; ".join(parts), "、" + "、".join(parts))[i] if parts else ""
    shown = _num(percent) if percent is not None else "?"
    return _text("global_control", lang, percent=shown, detail=detail)


def _conversion(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> Why:
    reason = row.get("reason") if isinstance(row.get("reason"), str) else None
    text = (
        "Converted: reached the program's goal{h}.",
        "コンバージョン: プログラムのゴールに到達しました{h}。",
    )[_i(lang)].format(
        h=(" (in the holdout group)", " (ホールドアウト群)")[_i(lang)]
        if reason == "holdout"
        else ""
    )
    return Why("conversion", str(row.get("decision", "converted")), reason, text)


def _message(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> Why:
    kind = "campaign_message" if row.get("source") == "campaign" else "message"
    status = str(row.get("status", ""))
    reason = row.get("reason") if isinstance(row.get("reason"), str) else None
    i = _i(lang)
    channel = _channel(row.get("channel"), lang) if row.get("channel") else None
    blocks = _blocks(row, lang)
    passed = (" ({b})", " ({b})")[i].format(b="; ".join(blocks)) if blocks else ""
    text: str
    # SES took the message, then rejected it or could not render it (the feedback function)
    not_delivered = row.get("not_delivered_reason")
    if status == "sent":
        if isinstance(not_delivered, str) and not_delivered:
            text = (
                "Accepted by {c} but never delivered: {r}.",
                "{c}で受け付けられましたが、配信されませんでした: {r}。",
            )[i].format(c=channel or "?", r=not_delivered)
        elif reason == "reconciled":
            text = _text("reconciled", lang, channel=channel or "?")
        else:
            text = ("Sent by {c}.", "{c}で送信しました。")[i].format(c=channel or "?")
        text = text[:-1] + passed + text[-1] if passed else text
    elif status == "sending":
        text = ("Being sent by {c} (not confirmed yet).", "{c}で送信中です (未確認)。")[i].format(
            c=channel or "?"
        )
    elif status == "holdout":
        text = _holdout(row, lang, "campaign")
    elif status == "suppressed":
        text = _suppressed(reason, row, lang, passed, tz)
    elif status == "deferred" and reason == "quiet_hours":
        text = _quiet(row, lang, tz)
    elif status == "deferred" and reason in (
        "contact_contended",
        "out_of_time",
        "local_time_moved",
    ):
        until = _time(row.get("until"), tz) or ("later", "後ほど")[i]
        text = _text(reason, lang, until=until)
    elif status == "exit" and reason == "goal_reached":
        at = _time(row.get("goal_reached_at"), tz)
        text = _text(reason, lang, at=(" on {at}", " ({at})")[i].format(at=at) if at else "")
    elif status == "failed":
        text = _failed(reason, row, lang)
    elif status == "duplicate" and reason == "in_flight":
        text = _text(reason, lang)
    else:
        text = _general(status, reason, lang)
    return Why(kind, status, reason, text)


def _suppressed(
    reason: str | None, row: Mapping[str, Any], lang: Lang, passed: str, tz: ZoneInfo
) -> str:
    i = _i(lang)
    if reason == "topic_opted_out":
        topic = str(row.get("topic") or ("of the message", "")[i])
        return _text(reason, lang, topic=topic, b=passed)
    if reason == "paused":
        until = _time(row.get("paused_until"), tz) or ("its end", "終了")[i]
        return _text(reason, lang, until=until)
    if reason in ("frequency_cap_day", "frequency_cap_week"):
        cap = row.get("cap")
        if isinstance(cap, Mapping):
            return _text(
                reason,
                lang,
                limit=_num(cap.get("limit", "?")),
                days=_num(cap.get("days", "?")),
                count=_num(cap.get("count", "?")),
            )
        per = ("daily", "1 日") if reason == "frequency_cap_day" else ("weekly", "1 週間")
        return (
            "Not sent: the {p} frequency cap was reached.",
            "未送信: {p}の配信上限に達しました。",
        )[i].format(p=per[i])
    if reason == "no_channel":
        return (
            "Not sent: no channel could be used{b}.",
            "未送信: 使えるチャネルがありませんでした{b}。",
        )[i].format(b=passed)
    if reason == "unknown_customer":
        return _text(reason, lang)
    return _general("suppressed", reason, lang)


def _quiet(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> str:
    quiet = row.get("quiet")
    window = ""
    if isinstance(quiet, Mapping):
        tz = _zone(quiet.get("time_zone"))
        window = " {s}–{e}".format(s=quiet.get("start", "?"), e=quiet.get("end", "?"))
    until = _time(row.get("until"), tz) or ("later", "後ほど")[_i(lang)]
    return _text("quiet_hours", lang, until=until, window=window)


def _failed(reason: str | None, row: Mapping[str, Any], lang: Lang) -> str:
    i = _i(lang)
    channel = _channel(row.get("channel"), lang) if row.get("channel") else None
    if reason in ("step_failed", "not_dispatched", "unreadable_customer"):
        return _text(reason, lang)
    if reason == "outcome_unknown" or (reason or "").endswith(OUTCOME_UNKNOWN_NOTE):
        # the sweep's, or the provider's answer that may have been a delivery (a 5xx after
        # the request left, a read timeout: ``... (outcome unknown)``): never "not sent"
        on = (" ({c})", " ({c})")[i].format(c=channel) if channel else ""
        return _text("outcome_unknown", lang, channel=on)
    if reason and reason.startswith(RENDER_ERROR_PREFIX):
        why = reason[len(RENDER_ERROR_PREFIX) :][:120]
        return _text("render_error", lang, detail=f" ({why})")
    if reason == "render_error":
        return _text("render_error", lang, detail="")
    # the provider's answer (``ses.send_email: Throttling``...): short, no personal data
    return ("Not sent: {c} failed ({r}).", "未送信: {c}での送信に失敗しました ({r})。")[i].format(
        c=channel or ("the channel", "チャネル")[i], r=(reason or "?")[:120]
    )


# An engagement branch's event (kizuna.programs.engagement): what happened, {m} the send
# step, {h} hours after its send; what did not, within {n} hours
_ENGAGED: Final[dict[str, Text]] = {
    "opened": (
        "the message of step {m} was opened {h} h after it was sent",
        "ステップ {m} のメッセージは送信から {h} 時間後に開封されました",
    ),
    "clicked": (
        "a link in the message of step {m} was clicked {h} h after it was sent",
        "ステップ {m} のメッセージのリンクが送信から {h} 時間後にクリックされました",
    ),
    "converted": (
        "the goal was reached {h} h after the message of step {m} was sent",
        "ステップ {m} のメッセージ送信から {h} 時間後にゴールに到達しました",
    ),
}
_NOT_ENGAGED: Final[dict[str, Text]] = {
    "opened": (
        "the message of step {m}{sent} was not opened within {n} h",
        "ステップ {m} のメッセージ{sent}は {n} 時間以内に開封されませんでした",
    ),
    "clicked": (
        "no link in the message of step {m}{sent} was clicked within {n} h",
        "ステップ {m} のメッセージ{sent}のリンクは {n} 時間以内にクリックされませんでした",
    ),
    "converted": (
        "the goal was not reached within {n} h of the message of step {m}{sent}",
        "ステップ {m} のメッセージ{sent}から {n} 時間以内にゴールに到達しませんでした",
    ),
}


def _engagement(row: Mapping[str, Any], reason: str | None, lang: Lang, tz: ZoneInfo) -> str:
    """The sentence of an engagement branch's STEP row (``engagement``: step, event,
    within_hours, and sent_at, found, hours, status as they apply)."""
    i = _i(lang)
    e: Mapping[str, Any] = row.get("engagement") or {}
    step, of = str(row.get("step", "")), str(e.get("step", "?"))
    event = str(e.get("event", "opened"))
    within = _num(e.get("within_hours", "?"))
    if reason == "not_sent":
        found = e.get("status")
        status = (" (its ledger entry: {s})", " (記録: {s})")[i].format(s=found) if found else ""
        return _text(reason, lang, step=step, of=of, status=status)
    hours = e.get("hours")
    engaged = _ENGAGED.get(event, _ENGAGED["opened"])[i]
    at = _time(e.get("sent_at"), tz)
    sent = (" (sent {t})", " ({t} 送信)")[i].format(t=at) if at else ""
    if reason == "not_measured":
        return _text(reason, lang, step=step, of=of, sent=sent)
    if hours is None:
        what = _NOT_ENGAGED.get(event, _NOT_ENGAGED["opened"])[i].format(m=of, n=within, sent=sent)
    elif Decimal(str(hours)) <= 0:
        what = (
            "the goal was reached before the message of step {m} was sent",
            "ステップ {m} のメッセージ送信前にゴールに到達していました",
        )[i].format(m=of)
    else:
        what = engaged.format(m=of, h=_num(hours)) + (
            ", later than {n} h",
            " ({n} 時間を過ぎていました)",
        )[i].format(n=within)
    if reason == "not_engaged":
        return _text(reason, lang, step=step, what=what)
    # the then side
    text = ("Branch {s}: {w}, within {n} h (then).", "分岐 {s}: {w} ({n} 時間以内、then)。")[i]
    return text.format(s=step, w=engaged.format(m=of, h=_num(hours)), n=within)


def _step(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> Why:
    decision = str(row.get("decision", ""))
    step = str(row.get("step", ""))
    reason = row.get("reason") if isinstance(row.get("reason"), str) else None
    i = _i(lang)
    if decision in ("then", "else") and isinstance(row.get("engagement"), Mapping):
        return Why("step", decision, reason, _engagement(row, reason, lang, tz))
    if decision == "then":
        text = ("Branch {s}: the condition held (then).", "分岐 {s}: 条件を満たしました (then)。")[
            i
        ]
        return Why("step", "then", reason, text.format(s=step))
    if decision == "else":
        failed = _conditions(row.get("failed"), lang)
        if reason == "unknown_customer":
            why = ("the customer is unknown", "顧客が見つかりません")[i]
        elif failed:
            why = ("the condition needs {f}", "{f}")[i].format(f=failed)
        else:
            why = ("the condition did not hold", "条件を満たしませんでした")[i]
        text = ("Branch {s}: the other side (else): {w}.", "分岐 {s}: else 側へ: {w}。")[i]
        return Why("step", "else", reason, text.format(s=step, w=why))
    if decision.startswith("arm:"):
        arm = decision[len("arm:") :]
        text = (
            "Split {s}: arm {a} (assigned by a stable hash).",
            "スプリット {s}: アーム {a} (安定したハッシュで割り当て)。",
        )[i]
        return Why("step", "arm", reason, text.format(s=step, a=arm))
    if decision == "exit" and reason == "unreadable_customer":
        text = (
            "Branch {s}: left the journey: this version of Kizuna cannot read the customer's "
            "stored record (neither side decided without it).",
            "分岐 {s}: ジャーニーを終了: このバージョンの Kizuna では顧客の保存データを"
            "読み取れません (データなしでどちらの側にも進めません)。",
        )[i]
        return Why("step", "exit", reason, text.format(s=step))
    if decision == "exit" and reason in ("step_removed", "step_changed"):
        return Why("step", "exit", reason, _text(reason, lang, step=step))
    if decision.startswith("until:"):
        at = _time(decision[len("until:") :], tz)
        text = ("Wait {s}: until {t}.", "待機 {s}: {t} まで。")[i]
        return Why("step", "until", reason, text.format(s=step, t=at))
    return Why("step", decision, reason, _general(decision, reason, lang))


def _journey(row: Mapping[str, Any], lang: Lang, tz: ZoneInfo) -> Why:
    i = _i(lang)
    entries = _num(row.get("entries", 0))
    last = _time(row.get("last_entry_at"), tz)
    parts = [
        ("Entered {n} time(s){l}", "{n} 回参加{l}")[i].format(
            n=entries, l=(", last on {t}", "、最終 {t}")[i].format(t=last) if last else ""
        )
    ]
    if row.get("holdout"):
        parts.append(("held out", "ホールドアウト")[i])
    converted = _time(row.get("goal_reached_at"), tz)
    if converted:
        parts.append(("reached the goal on {t}", "{t} にゴール到達")[i].format(t=converted))
    outcome = "holdout" if row.get("holdout") else "in_program"
    return Why("journey", outcome, None, ("; ", "、")[i].join(parts) + (".", "。")[i])


_EXPLAINERS: Final[dict[str, Callable[[Mapping[str, Any], Lang, ZoneInfo], Why]]] = {
    "ENTRY": _entry,
    "CONV": _conversion,
    "MSG": _message,
    "STEP": _step,
    "JOURNEY": _journey,
}
