"""The plain-language why of every ledger row, in Japanese and English: every reason the
code can write has a sentence of its own in both languages; rows written before reasons
carried their detail still read."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest

from kizuna.delivery.why import (
    CHANNEL_BLOCKS,
    LANGS,
    REASONS,
    Why,
    _general,
    explain,
    known_reason,
)
from kizuna.services.contracts import Status

ROOT = Path(__file__).resolve().parents[3]
KIZUNA = ROOT / "layers" / "kizuna"
# where reasons are decided and written (services/evaluate.py and reconcile write what
# these decide; the scan covers them too)
WRITERS = [
    "delivery/policy.py",
    "delivery/ledger.py",
    "services/send.py",
    "services/campaign.py",
    "services/cohort.py",
    "services/evaluate.py",
    "services/reconcile.py",
    "campaigns/engine.py",
    "programs/evaluate.py",
    "programs/claims.py",
    "delivery/control.py",  # the global control group's reason (a constant both writers use)
    "programs/engagement.py",  # an engagement branch's else side
]
# functions whose answer is a reason (a channel's block, a stale claim's outcome)
RETURNS_REASON = ("channel_block", "carrier_block", "settle")
# "reason" keys that are no ledger row's: the campaign state machine's answer when an
# occurrence is not running (``occurrence paused``...) or runs in another execution
NOT_LEDGER = {"occurrence x", "occurrence running in another execution"}
# call -> the position of its reason argument
REASON_ARG = {"skip": 0, "chosen": 1, "_final": 5, "Decision": 4, "PolicyDecision": 2}


def _name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def written_reasons() -> set[str]:
    """Every reason code the writers can put in a row, read off their source: ``reason=``
    arguments, ``"reason":`` keys, the reason argument of the deciding calls, what
    ``channel_block`` and ``settle`` return, ``block = ...``; an f-string as its constant
    prefix followed by ``x`` (``render_error: x``, ``suppressed_x``)."""
    trees = [ast.parse((KIZUNA / m).read_text()) for m in WRITERS]
    constants = {
        t.id: node.value.value
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }

    def value(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                return head.value + "x"
        return None

    found: list[str | None] = []
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                found += [value(k.value) for k in node.keywords if k.arg == "reason"]
                at = REASON_ARG.get(_name(node))
                if at is not None and len(node.args) > at:
                    found.append(value(node.args[at]))
            elif isinstance(node, ast.Dict):
                found += [
                    value(v)
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "reason"
                ]
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "block" for t in node.targets
            ):
                found.append(value(node.value))
            elif isinstance(node, ast.FunctionDef) and node.name in RETURNS_REASON:
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        last = ret.value.elts[-1] if isinstance(ret.value, ast.Tuple) else ret.value
                        found.append(value(last))
    # "frequency_cap_*" come from a loop over (reason, ...) tuples in decide()
    found += [
        c.value
        for c in ast.walk(trees[0])
        if isinstance(c, ast.Constant)
        and isinstance(c.value, str)
        and c.value.startswith("frequency_cap_")
    ]
    return {r for r in found if r} - NOT_LEDGER


def test_the_scan_finds_the_reasons_the_code_writes() -> None:
    # a sanity check of the scanner itself: these are written today
    reasons = written_reasons()
    assert {
        "audience",
        "reentry_once",
        "reentry_window",
        "no_channel",
        "unknown_customer",
        "claim_not_in_state",
        "holdout",
        "global_control",
        "frequency_cap_day",
        "frequency_cap_week",
        "quiet_hours",
        "goal_reached",
        "step_failed",
        "not_dispatched",
        "outcome_unknown",
        "reconciled",
        "no_consent",
        "no_address",
        "channel_not_configured",
        "suppressed_opt_out",
        "render_error: x",
        "suppressed_x",
        "not_sent",
        "not_engaged",
        "not_measured",
    } <= reasons


def test_every_reason_the_code_writes_has_a_sentence_of_its_own() -> None:
    missing = sorted(r for r in written_reasons() if not (known_reason(r) or r in CHANNEL_BLOCKS))
    assert missing == [], f"reasons without a sentence in kizuna.delivery.why: {missing}"


# -- one row per reason (rich, as written now; and as older rows were, without detail) --------
AT = "2026-01-05T13:30:00.000000Z"  # 22:30 in Tokyo
MSG: dict[str, Any] = {
    "kind": "MSG",
    "program": "cart-abandonment",
    "step": "remind",
    "execution": "cart-abandonment-abc",
    "at": AT,
}
ENTRY: dict[str, Any] = {
    "kind": "ENTRY",
    "program": "second-purchase-coupon",
    "trigger_type": "customer.first_purchase",
    "trigger_id": "c1:first_purchase",
}
CAMPAIGN: dict[str, Any] = {**MSG, "source": "campaign", "campaign": "spring", "step": "send"}

ROWS: dict[str, list[tuple[dict[str, Any], str, str]]] = {
    # reason -> [(row, en, ja)]
    "audience": [
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "audience",
                "failed": [{"field": "lifecycle", "expected": ["new"], "found": "repeat"}],
            },
            "Not entered: the audience needs lifecycle new; this customer's lifecycle is repeat.",
            "対象外: ライフサイクルが new の顧客が対象ですが、この顧客は repeat です。",
        ),
        (
            {**ENTRY, "decision": "skipped", "reason": "audience"},
            "Not entered: the customer is not in the program's audience.",
            "対象外: プログラムの対象条件に合いません。",
        ),
    ],
    "reentry_once": [
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "reentry_once",
                "last_entry_at": "2026-01-05T00:00:00Z",
            },
            "Not entered: the program is once per customer, and this customer already "
            "entered on 2026-01-05 00:00 UTC.",
            "対象外: このプログラムは 1 人 1 回までで、この顧客は参加済みです (2026-01-05 00:00 UTC)。",
        ),
        (
            {**ENTRY, "decision": "skipped", "reason": "reentry_once"},
            "Not entered: the program is once per customer, and this customer already entered.",
            "対象外: このプログラムは 1 人 1 回までで、この顧客は参加済みです。",
        ),
    ],
    "reentry_window": [
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "reentry_window",
                "last_entry_at": "2026-01-05T00:00:00Z",
                "reentry_days": Decimal(14),
            },
            "Not entered: the program may be re-entered every 14 days; the last entry was "
            "2026-01-05 00:00 UTC.",
            "対象外: 再参加は 14 日ごとで、前回の参加は 2026-01-05 00:00 UTC です。",
        ),
    ],
    "no_channel": [
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "no_channel",
                "channels": ["email", "line"],
                "reachable": [],
            },
            "Not entered: no channel of the program can reach this customer "
            "(the program's: email, LINE; reachable: none).",
            "対象外: プログラムのチャネルではこの顧客に届けられません"
            " (プログラムのチャネル: メール, LINE、届けられるチャネル: なし)。",
        ),
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "no_channel",
                "channels": ["email", "line"],
                "reachable": [],
                "skipped": ["email:no_consent", "line:no_address"],
            },
            "Not entered: no channel of the program can reach this customer "
            "(email: not consented; LINE: no address).",
            "対象外: プログラムのチャネルではこの顧客に届けられません (メール: 同意なし; LINE: 宛先なし)。",
        ),
        (
            {
                **MSG,
                "status": "suppressed",
                "reason": "no_channel",
                "skipped": ["email:no_consent", "line:no_address"],
            },
            "Not sent: no channel could be used (email: not consented; LINE: no address).",
            "未送信: 使えるチャネルがありませんでした (メール: 同意なし; LINE: 宛先なし)。",
        ),
    ],
    "unknown_customer": [
        (
            {**ENTRY, "decision": "skipped", "reason": "unknown_customer"},
            "Not decided: the customer is unknown.",
            "判断不可: 顧客が見つかりません。",
        ),
        (
            {**MSG, "status": "suppressed", "reason": "unknown_customer"},
            "Not decided: the customer is unknown.",
            "判断不可: 顧客が見つかりません。",
        ),
    ],
    "claim_not_in_state": [
        (
            {
                **ENTRY,
                "decision": "skipped",
                "reason": "claim_not_in_state",
                "trigger_type": "customer.segment_changed",
            },
            "Not entered: what the event customer.segment_changed claims is not in the "
            "customer's stored state.",
            "対象外: イベント customer.segment_changed の内容が顧客の保存状態と一致しません。",
        ),
    ],
    "holdout": [
        (
            {
                **ENTRY,
                "decision": "holdout",
                "reason": "holdout",
                "held_out": "program",
                "holdout_percent": Decimal(10),
                "bucket": Decimal("3.27"),
            },
            "Held out (program holdout 10%; this customer's hash bucket is 3.27 of 100).",
            "ホールドアウト (プログラムのホールドアウト 10%、この顧客のハッシュバケットは 100 中 3.27)。",
        ),
        (
            {**ENTRY, "decision": "holdout", "reason": "holdout"},
            "Held out (program holdout).",
            "ホールドアウト (プログラムのホールドアウト)。",
        ),
        (
            {
                **CAMPAIGN,
                "status": "holdout",
                "reason": "holdout",
                "held_out": "campaign",
                "holdout_percent": 20,
                "bucket": 11.5,
            },
            "Held out (campaign holdout 20%; this customer's hash bucket is 11.5 of 100).",
            "ホールドアウト (キャンペーンのホールドアウト 20%、この顧客のハッシュバケットは 100 中 11.5)。",
        ),
        (
            {"kind": "CONV", "program": "p", "decision": "converted", "reason": "holdout"},
            "Converted: reached the program's goal (in the holdout group).",
            "コンバージョン: プログラムのゴールに到達しました (ホールドアウト群)。",
        ),
    ],
    "global_control": [
        (
            {
                **ENTRY,
                "decision": "holdout",
                "reason": "global_control",
                "held_out": "global_control",
                "global_control_percent": 5,
                "global_control_since": "2026-01-01",
                "bucket": 3.21,
            },
            "Held out: this customer is in the global control group (5% of customers, no "
            "marketing message from any program or campaign; since 2026-01-01; this customer's "
            "hash bucket is 3.21 of 100).",
            "ホールドアウト: この顧客はグローバルコントロール群です (顧客の 5%、どのプログラム・"
            "キャンペーンからもマーケティングメッセージを送りません、2026-01-01 から、"
            "この顧客のハッシュバケットは 100 中 3.21)。",
        ),
        (
            {
                **CAMPAIGN,
                "status": "holdout",
                "arm": "global_control",
                "reason": "global_control",
                "held_out": "global_control",
                "global_control_percent": 7.5,
            },
            "Held out: this customer is in the global control group (7.5% of customers, no "
            "marketing message from any program or campaign).",
            "ホールドアウト: この顧客はグローバルコントロール群です (顧客の 7.5%、どのプログラム・"
            "キャンペーンからもマーケティングメッセージを送りません)。",
        ),
    ],
    "frequency_cap_day": [
        (
            {
                **MSG,
                "status": "suppressed",
                "channel": "email",
                "reason": "frequency_cap_day",
                "cap": {
                    "limit": Decimal(2),
                    "days": Decimal(1),
                    "count": Decimal(2),
                    "priority": 40,
                },
            },
            "Not sent: frequency cap 2 per day reached (2 sent).",
            "未送信: 1 日 2 通の配信上限に達しました (2 通送信済み)。",
        ),
        (
            {**MSG, "status": "suppressed", "channel": "email", "reason": "frequency_cap_day"},
            "Not sent: the daily frequency cap was reached.",
            "未送信: 1 日の配信上限に達しました。",
        ),
    ],
    "frequency_cap_week": [
        (
            {
                **CAMPAIGN,
                "status": "suppressed",
                "channel": "email",
                "reason": "frequency_cap_week",
                "cap": {"limit": 5, "days": 7, "count": 5, "priority": 50},
            },
            "Not sent: frequency cap 5 per 7 days reached (5 sent).",
            "未送信: 7 日間 5 通の配信上限に達しました (5 通送信済み)。",
        ),
    ],
    "quiet_hours": [
        (
            {
                **MSG,
                "status": "deferred",
                "channel": "sms",
                "reason": "quiet_hours",
                "until": "2026-01-05T23:00:00.000000Z",
                "quiet": {"start": "21:00", "end": "08:00", "time_zone": "Asia/Tokyo"},
            },
            "Deferred until 2026-01-06 08:00 JST (quiet hours 21:00–08:00).",
            "2026-01-06 08:00 JST まで延期 (配信停止時間帯 21:00–08:00)。",
        ),
        (
            {**MSG, "status": "deferred", "reason": "quiet_hours", "until": "2026-01-05T23:00:00Z"},
            "Deferred until 2026-01-05 23:00 UTC (quiet hours).",
            "2026-01-05 23:00 UTC まで延期 (配信停止時間帯)。",
        ),
    ],
    "contact_contended": [
        (
            {**MSG, "status": "deferred", "reason": "contact_contended", "until": AT},
            "Deferred until 2026-01-05 13:30 UTC: other messages were being sent to the "
            "customer at the same moment (the frequency caps are checked again then).",
            "2026-01-05 13:30 UTC まで延期: 同じ時刻にこの顧客へ他のメッセージを送信中でした "
            "(その時点で配信上限を再確認します)。",
        ),
    ],
    "local_time_moved": [
        (
            {**MSG, "status": "deferred", "reason": "local_time_moved", "until": AT},
            "Deferred until 2026-01-05 13:30 UTC: the customer's time zone changed since they "
            "entered, and the program's first local time had not come yet in their new zone.",
            "2026-01-05 13:30 UTC まで延期: 参加後に顧客のタイムゾーンが変わり、新しいタイムゾーン"
            "ではプログラムの最初の指定時刻がまだ来ていませんでした。",
        ),
    ],
    "out_of_time": [
        (
            {**MSG, "status": "deferred", "reason": "out_of_time", "until": AT},
            "Deferred until 2026-01-05 13:30 UTC: the send ran out of time before reaching "
            "this message (a large group, a slow channel); it is decided and sent again from "
            "then (a campaign: with its next pass).",
            "2026-01-05 13:30 UTC まで延期: 送信処理の時間内にこのメッセージまで届きませんでした "
            "(大きなグループ、または応答の遅いチャネル)。その時点以降に再判定して送信します "
            "(キャンペーンは次のパスで)。",
        ),
    ],
    "goal_reached": [
        (
            {
                **MSG,
                "status": "exit",
                "reason": "goal_reached",
                "goal_reached_at": "2026-01-05T01:00:00Z",
            },
            "Not sent: the customer reached the program's goal on 2026-01-05 01:00 UTC and "
            "left the journey.",
            "未送信: 顧客がプログラムのゴールに到達したため (2026-01-05 01:00 UTC)、ジャーニーを終了しました。",
        ),
    ],
    "step_failed": [
        (
            {**MSG, "status": "failed", "reason": "step_failed"},
            "Not sent: the send step failed after every retry.",
            "未送信: 送信ステップが再試行後も失敗しました。",
        ),
    ],
    "unreadable_customer": [
        (
            {**MSG, "status": "failed", "reason": "unreadable_customer"},
            "Not sent: this version of Kizuna cannot read the customer's stored record "
            "(a value it refuses); the other recipients were not affected.",
            "未送信: このバージョンの Kizuna では顧客の保存データを読み取れません "
            "(受け付けない値があります)。他の宛先には影響していません。",
        ),
    ],
    "not_dispatched": [
        (
            {**MSG, "status": "failed", "channel": "email", "reason": "not_dispatched"},
            "Not sent: the message never reached the provider (settled by reconciliation); "
            "a retry of the same request or a redrive of its execution sends it, once: "
            "do not send it again under a new key.",
            "未送信: メッセージは配信事業者に渡りませんでした (照合で確定)。"
            "同じリクエストの再試行または実行の再実行 (redrive) で 1 回だけ送信されます。"
            "新しいキーで送り直さないでください。",
        ),
    ],
    "outcome_unknown": [
        (
            {**MSG, "status": "failed", "channel": "push", "reason": "outcome_unknown"},
            "Outcome unknown: the provider may have taken the message (push); it is never "
            "sent again.",
            "結果不明: 配信事業者が受け取った可能性があります (プッシュ通知)。再送はしません。",
        ),
    ],
    "render_error": [
        (
            {
                **CAMPAIGN,
                "status": "failed",
                "channel": "email",
                "reason": "render_error: 'coupon' is undefined",
            },
            "Not sent: the template could not be rendered ('coupon' is undefined).",
            "未送信: テンプレートを表示できませんでした ('coupon' is undefined)。",
        ),
    ],
    "topic_opted_out": [
        (
            {
                **MSG,
                "status": "suppressed",
                "reason": "topic_opted_out",
                "topic": "promotions",
                "skipped": ["email:topic_opted_out", "sms:no_consent"],
            },
            "Not sent: the customer opted out of the topic promotions on every usable channel "
            "(email: opted out of this topic; SMS: not consented).",
            "未送信: 顧客は使えるすべてのチャネルでトピック promotions の配信を停止しています "
            "(メール: このトピックの配信停止の申し出あり; SMS: 同意なし)。",
        ),
    ],
    "paused": [
        (
            {
                **MSG,
                "status": "suppressed",
                "channel": "email",
                "reason": "paused",
                "paused_until": "2026-12-31T00:00:00+00:00",
            },
            "Not sent: the customer paused every non-transactional message until "
            "2026-12-31 00:00 UTC.",
            "未送信: 顧客が 2026-12-31 00:00 UTC まで取引関連以外のすべての配信を"
            "一時停止しています。",
        ),
    ],
    "in_flight": [
        (
            {**MSG, "status": "duplicate", "reason": "in_flight"},
            "Being sent by another invocation.",
            "別の呼び出しが送信中です。",
        ),
    ],
    "reconciled": [
        (
            {**MSG, "status": "sent", "channel": "email", "reason": "reconciled"},
            "Sent by email (confirmed by reconciliation).",
            "メールで送信しました (照合で確認)。",
        ),
    ],
    # an engagement branch's else side (more in tests/unit/test_engagement_branch.py)
    "not_sent": [
        (
            {
                "kind": "STEP",
                "step": "opened",
                "decision": "else",
                "reason": "not_sent",
                "engagement": {"step": "coupon", "event": "opened", "within_hours": 48},
            },
            "Branch opened: the other side (else): step coupon sent this customer no message.",
            "分岐 opened: else 側へ: ステップ coupon ではこの顧客にメッセージを送っていません。",
        ),
    ],
    "not_engaged": [
        (
            {
                "kind": "STEP",
                "step": "clicked",
                "decision": "else",
                "reason": "not_engaged",
                "engagement": {"step": "coupon", "event": "clicked", "within_hours": 24},
            },
            "Branch clicked: the other side (else): no link in the message of step coupon was "
            "clicked within 24 h.",
            "分岐 clicked: else 側へ: ステップ coupon のメッセージのリンクは 24 時間以内に"
            "クリックされませんでした。",
        ),
    ],
    "not_measured": [
        (
            {
                "kind": "STEP",
                "step": "clicked",
                "decision": "else",
                "reason": "not_measured",
                "engagement": {
                    "step": "coupon",
                    "event": "clicked",
                    "within_hours": 24,
                    "sent_at": AT,
                    "links_untracked": True,
                },
            },
            "Branch clicked: the other side (else): the message of step coupon (sent "
            "2026-01-05 13:30 UTC) went with none of its links tracked (to a host the "
            "configuration does not track, a phone, mail or LINE app link, in an action, or "
            "too long for LINE with them tracked): whether a link was clicked could not be "
            "seen.",
            "分岐 clicked: else 側へ: ステップ coupon のメッセージ (2026-01-05 13:30 UTC 送信)は"
            "計測できるリンクなしで送信されました (計測対象外のホストへのリンク、電話・メール・"
            "LINE アプリのリンク、アクションのリンク、または計測用リンクにすると LINE の上限を"
            "超えるため)。"
            "クリックの有無は確認できません。",
        ),
    ],
    "step_removed": [
        (
            {"kind": "STEP", "step": "remind", "decision": "exit", "reason": "step_removed"},
            "Step remind: left the journey: the program was redeployed without a step remind "
            "(renamed or removed) while the customer was at it; nothing was sent for it.",
            "ステップ remind: ジャーニーを終了: 顧客がこのステップにいる間に、ステップ remind の"
            "ないプログラム (名前の変更または削除) がデプロイされました。このステップでは何も"
            "送信していません。",
        ),
    ],
    "step_changed": [
        (
            {"kind": "STEP", "step": "remind", "decision": "exit", "reason": "step_changed"},
            "Step remind: left the journey: the program was redeployed with a step remind of "
            "another type while the customer was at it; nothing was sent for it.",
            "ステップ remind: ジャーニーを終了: 顧客がこのステップにいる間に、ステップ remind の"
            "種類を変えたプログラムがデプロイされました。このステップでは何も送信していません。",
        ),
    ],
}


def _cases() -> list[tuple[str, dict[str, Any], str, str]]:
    return [(r, row, en, ja) for r, rows in ROWS.items() for row, en, ja in rows]


def test_every_reason_has_rows_here() -> None:
    assert set(REASONS) == set(ROWS)


@pytest.mark.parametrize(("reason", "row", "en", "ja"), _cases())
def test_every_reason_reads_in_both_languages(
    reason: str, row: dict[str, Any], en: str, ja: str
) -> None:
    assert explain(row, "en").text == en
    assert explain(row, "ja").text == ja
    for lang in LANGS:
        why = explain(row, lang)
        assert why.reason == row.get("reason")
        outcome = str(row.get("status") or row.get("decision"))
        assert why.text != _general(outcome, why.reason, lang)  # a sentence of its own


@pytest.mark.parametrize("reason", sorted(written_reasons()))
def test_every_written_reason_reads_in_both_languages_where_it_is_written(reason: str) -> None:
    """The reasons of message rows (suppressed, failed) and entries (skipped), as the
    scan finds them: a sentence in each language, never the general one."""
    if reason in CHANNEL_BLOCKS or reason.startswith("suppressed_"):  # a channel passed over
        row = {**MSG, "status": "sent", "channel": "line", "skipped": [f"email:{reason}"]}
        words = CHANNEL_BLOCKS.get(reason, ("suppressed (x)", "停止中 (x)"))
        for n, lang in enumerate(("en", "ja")):
            assert words[n] in explain(row, lang).text
        return
    rows = [row for row, _, _ in ROWS.get(reason, [])]
    if reason.startswith("render_error"):
        rows = [{**MSG, "status": "failed", "reason": reason}]
    assert rows, reason
    for row in rows:
        for lang in LANGS:
            why = explain(row, lang)
            outcome = str(row.get("status") or row.get("decision"))
            assert why.text and why.text != _general(outcome, why.reason, lang)


# -- the brief's examples and the outcomes ----------------------------------------------------
@pytest.mark.parametrize(
    "reason",
    [
        "ses.send_email: InternalFailure (outcome unknown)",
        "no answer: ReadTimeoutError (outcome unknown)",
        "push: unexpected ResponseParserError (outcome unknown)",
    ],
)
def test_a_failure_that_may_have_been_delivered_never_reads_not_sent(reason: str) -> None:
    """A provider's 5xx after the request left, a read timeout, an error no channel expected:
    the customer may have the message (it is never sent again). "Not sent" would invite
    someone to send it by hand, twice."""
    row = {**MSG, "status": "failed", "channel": "email", "reason": reason}
    assert explain(row, "en").text == (
        "Outcome unknown: the provider may have taken the message (email); it is never sent again."
    )
    assert explain(row, "ja").text.startswith("結果不明")
    assert explain(row, "en").reason == reason


def test_sent_by_the_fallback_names_the_channels_passed_over() -> None:
    row = {**MSG, "status": "sent", "channel": "line", "skipped": ["email:no_consent"]}
    assert explain(row, "en") == Why(
        "message", "sent", None, "Sent by LINE (email: not consented)."
    )
    assert explain(row, "ja").text == "LINEで送信しました (メール: 同意なし)。"
    bounced = {**row, "skipped": ["email:suppressed_bounce", "sms:suppressed_carrier"]}
    assert explain(bounced, "en").text == (
        "Sent by LINE (email: suppressed after a bounce; SMS: suppressed (carrier))."
    )
    assert explain(bounced, "ja").text == (
        "LINEで送信しました (メール: バウンスにより停止; SMS: 停止中 (carrier))。"
    )


@pytest.mark.parametrize(
    ("row", "kind", "outcome", "en", "ja"),
    [
        (
            {**ENTRY, "decision": "entered", "execution": "x"},
            "entry",
            "entered",
            "Entered the program.",
            "プログラムに参加しました。",
        ),
        (
            {"kind": "CONV", "decision": "converted"},
            "conversion",
            "converted",
            "Converted: reached the program's goal.",
            "コンバージョン: プログラムのゴールに到達しました。",
        ),
        (
            {**MSG, "status": "sending", "channel": "email"},
            "message",
            "sending",
            "Being sent by email (not confirmed yet).",
            "メールで送信中です (未確認)。",
        ),
        (
            {**CAMPAIGN, "status": "sent", "channel": "sms"},
            "campaign_message",
            "sent",
            "Sent by SMS.",
            "SMSで送信しました。",
        ),
        (
            {
                **MSG,
                "status": "failed",
                "channel": "email",
                "reason": "ses.send_email: MessageRejected",
            },
            "message",
            "failed",
            "Not sent: email failed (ses.send_email: MessageRejected).",
            "未送信: メールでの送信に失敗しました (ses.send_email: MessageRejected)。",
        ),
        (
            {"kind": "STEP", "step": "check", "decision": "then"},
            "step",
            "then",
            "Branch check: the condition held (then).",
            "分岐 check: 条件を満たしました (then)。",
        ),
        (
            {
                "kind": "STEP",
                "step": "check",
                "decision": "else",
                "failed": [
                    {"field": "rank", "expected": ["Gold"], "found": "Bronze"},
                    {"field": "days_since_last_order", "expected": [{"<": 30}], "found": 45},
                ],
            },
            "step",
            "else",
            "Branch check: the other side (else): the condition needs rank Gold; this "
            "customer's rank is Bronze. It also needs days since the last order less than 30; "
            "this customer's days since the last order is 45.",
            "分岐 check: else 側へ: ランクが Gold の顧客が対象ですが、この顧客は Bronze です。"
            "また、最終注文からの日数が 30 未満 の顧客が対象ですが、この顧客は 45 です。",
        ),
        (
            {"kind": "STEP", "step": "check", "decision": "else"},
            "step",
            "else",
            "Branch check: the other side (else): the condition did not hold.",
            "分岐 check: else 側へ: 条件を満たしませんでした。",
        ),
        (
            {"kind": "STEP", "step": "check", "decision": "else", "reason": "unknown_customer"},
            "step",
            "else",
            "Branch check: the other side (else): the customer is unknown.",
            "分岐 check: else 側へ: 顧客が見つかりません。",
        ),
        (
            {"kind": "STEP", "step": "check", "decision": "exit", "reason": "unreadable_customer"},
            "step",
            "exit",
            "Branch check: left the journey: this version of Kizuna cannot read the customer's "
            "stored record (neither side decided without it).",
            "分岐 check: ジャーニーを終了: このバージョンの Kizuna では顧客の保存データを"
            "読み取れません (データなしでどちらの側にも進めません)。",
        ),
        (
            {"kind": "STEP", "step": "reminder", "decision": "exit", "reason": "step_removed"},
            "step",
            "exit",
            "Step reminder: left the journey: the program was redeployed without a step "
            "reminder (renamed or removed) while the customer was at it; nothing was sent "
            "for it.",
            "ステップ reminder: ジャーニーを終了: 顧客がこのステップにいる間に、ステップ "
            "reminder のないプログラム (名前の変更または削除) がデプロイされました。この"
            "ステップでは何も送信していません。",
        ),
        (
            {"kind": "STEP", "step": "ab", "decision": "arm:b"},
            "step",
            "arm",
            "Split ab: arm b (assigned by a stable hash).",
            "スプリット ab: アーム b (安定したハッシュで割り当て)。",
        ),
        (
            {"kind": "STEP", "step": "wait", "decision": "until:2026-01-06T01:00:00Z"},
            "step",
            "until",
            "Wait wait: until 2026-01-06 01:00 UTC.",
            "待機 wait: 2026-01-06 01:00 UTC まで。",
        ),
        (
            {
                "sk": "JOURNEY#second-purchase-coupon",
                "entries": Decimal(2),
                "last_entry_at": "2026-01-05T00:00:00Z",
                "holdout": True,
                "goal_reached_at": "2026-01-07T00:00:00Z",
            },
            "journey",
            "holdout",
            "Entered 2 time(s), last on 2026-01-05 00:00 UTC; held out; reached the goal on "
            "2026-01-07 00:00 UTC.",
            "2 回参加、最終 2026-01-05 00:00 UTC、ホールドアウト、2026-01-07 00:00 UTC にゴール到達。",
        ),
    ],
)
def test_outcomes_read_in_both_languages(
    row: dict[str, Any], kind: str, outcome: str, en: str, ja: str
) -> None:
    assert (explain(row, "en").kind, explain(row, "en").outcome) == (kind, outcome)
    assert explain(row, "en").text == en
    assert explain(row, "ja").text == ja


def test_every_status_a_message_can_have_reads_in_both_languages() -> None:
    for status in [*get_args(Status), "sending", "holdout"]:
        for lang in LANGS:
            assert explain({**MSG, "status": status, "channel": "email"}, lang).text


def test_times_are_shown_in_the_zone_asked_for() -> None:
    row = {**ENTRY, "decision": "skipped", "reason": "reentry_once", "last_entry_at": AT}
    assert "2026-01-05 22:30 JST" in explain(row, "en", time_zone="Asia/Tokyo").text
    assert "2026-01-05 13:30 UTC" in explain(row, "en").text


def test_unknown_rows_and_codes_still_read_and_nothing_raises() -> None:
    assert explain({"kind": "ODD", "status": "weird", "reason": "new_rule"}, "en") == Why(
        "unknown", "weird", "new_rule", "weird: new_rule."
    )
    assert explain({**ENTRY, "decision": "skipped", "reason": "new_rule"}, "ja").text == (
        "対象外: new_rule。"
    )
    assert explain({**MSG, "status": "suppressed", "reason": "new_rule"}, "en").text == (
        "Not sent: new_rule."
    )
    # damaged detail: wrong types are not trusted
    odd = {**ENTRY, "decision": "skipped", "reason": "audience", "failed": "lifecycle"}
    assert explain(odd, "en").text == "Not entered: the customer is not in the program's audience."
    assert explain({**MSG, "status": "deferred", "reason": "quiet_hours", "until": "soon"}, "en")
    assert explain({}, "en").kind == "unknown"


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="lang"):
        explain({**ENTRY, "decision": "entered"}, "fr")


def test_sentences_hold_no_placeholders() -> None:
    for _, row, _, _ in _cases():
        for lang in LANGS:
            assert not re.search(r"\{[a-z_]+\}", explain(row, lang).text)
