"""What the reports say, in the runtime package: the statistics (rates, lift against a
holdout, migration), the report document (:mod:`.document`, the JSON the API serves) and
where published reports live in the analytics bucket (:mod:`.published`). The builder and
the HTML renderer are tooling (``kizuna_tools.reports``)."""
