"""Reporting: statistics (:mod:`kizuna.analytics.stats`) and the self-contained HTML report
(:mod:`kizuna_tools.reports.html`). Pure code: no AWS, no network, no numpy."""
