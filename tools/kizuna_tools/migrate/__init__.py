"""``kizuna migrate pinpoint DIR --out OUT``: an Amazon Pinpoint project as a Kizuna project.

DIR holds what a Pinpoint user can still export (:mod:`kizuna_tools.migrate.inputs` names
the files); OUT receives a Kizuna project: ``kizuna-config.json`` (custom attributes and
events, the contact policy), ``customers.jsonl`` (for ``kizuna import customers``),
``segments/``, ``templates/``, ``campaigns/``, ``programs/`` and ``MIGRATION-REPORT.md``
(+ ``.json``). docs/MIGRATING-FROM-PINPOINT.md is the guide.

Modules: ``shapes`` (Pinpoint's model from botocore), ``inputs`` (the input layout),
``names`` (every Kizuna name for a Pinpoint one), ``attributes`` (type inference),
``endpoints`` (customers), ``segments`` (dimensions and event filters as conditions, for
segments, campaigns and journeys alike), ``campaigns``, ``handlebars`` and ``templates``
(Handlebars to Jinja2), ``library`` (each template translated once, copied to its owners),
``journeys``, ``notes`` and ``report`` (what a person must know or decide), ``project``
(the orchestration).
"""
