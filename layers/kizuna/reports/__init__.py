"""Reporting: statistics (:mod:`kizuna.reports.stats`) and the self-contained HTML report
(:mod:`kizuna.reports.html`). Pure code: no AWS, no network, no numpy."""
