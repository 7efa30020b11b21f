"""Messages rendered per second: the cached sandboxed renderer, beside a naive baseline
that builds a Jinja2 environment and reads the template files for every message."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from bench.common import print_table
from kizuna.delivery.coupons import issue_coupon
from kizuna.delivery.samples import sample_customer
from kizuna.delivery.templates import PARTS, Renderer, build_context, format_date, format_number
from kizuna.runtime.config import KizunaConfig

ROOT = Path(__file__).resolve().parents[1] / "templates"


def _context(locale: str) -> dict[str, Any]:
    cfg = KizunaConfig()
    customer = sample_customer(locale, customer_id="c1")
    coupon = issue_coupon(
        b"k" * 32,
        "second-purchase-coupon",
        "c1",
        "ex",
        "coupon",
        discount="10%",
        expires_at=datetime.now(UTC) + timedelta(days=14),
    )
    return build_context(
        customer,
        program="second-purchase-coupon",
        step="coupon",
        loyalty_config=cfg.loyalty,
        coupon=coupon,
        recommendations=[p.model_dump() for p in cfg.catalog.best_sellers],
        unsubscribe_url="https://example.com/u?t=x",
    )


def naive(channel: str, locale: str, context: dict[str, Any]) -> dict[str, str]:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(ROOT)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html.j2"]),
    )
    env.filters["number"] = format_number
    env.filters["date"] = format_date
    return {
        part: env.get_template(f"second-purchase-coupon/coupon/{locale}/{part}.j2").render(context)
        for part in PARTS[channel]
    }


def run(n: int) -> dict[str, float]:
    renderer = Renderer(ROOT)
    out: dict[str, float] = {}
    rows = []
    for channel in ("email", "sms", "push", "line"):
        ctx = _context("ja")
        t0 = time.perf_counter()
        for _ in range(n):
            renderer.render("second-purchase-coupon", "coupon", channel, "ja", ctx)
        fast = n / (time.perf_counter() - t0)
        m = max(n // 20, 20)
        t0 = time.perf_counter()
        for _ in range(m):
            naive(channel, "ja", ctx)
        slow = m / (time.perf_counter() - t0)
        out[channel] = fast
        out[f"{channel}_naive"] = slow
        rows.append([channel, f"{fast:,.0f}", f"{slow:,.0f}", f"{fast / slow:.0f}x"])
    print_table(
        "Messages rendered per second (Japanese coupon, all parts of the channel)",
        ["channel", "renderer/s", "naive baseline/s", "speed-up"],
        rows,
    )
    return out


if __name__ == "__main__":
    run(2000)
