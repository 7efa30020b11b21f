"""Delivery building blocks: rendering, channel adapters, coupons, unsubscribe tokens and
feedback parsing.

Import the submodule you need (``kizuna.delivery.templates``, ``.channels``, ``.coupons``,
``.unsubscribe``, ``.feedback``): nothing is imported here, so a handler that only renders
does not load botocore, and one that only parses feedback does not load Jinja2.
"""
