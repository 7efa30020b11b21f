"""The HTTP API and the console: one Lambda function behind API Gateway (HTTP API).

``/api/...`` for people and scripts with a Cognito id token, ``/machine/...`` for machines
with IAM (SigV4), ``/console/...`` for the server-rendered console (session cookie). Each
route family is a Powertools ``Router`` in ``routes/`` (JSON) or ``console/`` (pages);
:func:`kizuna.api.app.build_app` puts them together.
"""
