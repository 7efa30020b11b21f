"""Per-request context for routes: the dependencies and the authenticated caller.

``require(router, Role.MARKETER)`` is the one way a route asks for a caller: it raises
401 (no or invalid identity) or 403 (the caller's group is too low, or a machine on a
people's route) before the route touches anything.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.exceptions import ForbiddenError, UnauthorizedError

from kizuna.api.auth import AuthError, Principal, Role
from kizuna.api.deps import ApiDeps

DEPS_KEY = "deps"
PRINCIPAL_KEY = "principal"
AUTH_ERROR_KEY = "auth_error"


def deps(router: Any) -> ApiDeps:
    value: ApiDeps = router.context[DEPS_KEY]
    return value


def caller(router: Any) -> Principal:
    """The authenticated caller, or 401."""
    principal = router.context.get(PRINCIPAL_KEY)
    if principal is None:
        error: AuthError | None = router.context.get(AUTH_ERROR_KEY)
        raise UnauthorizedError(str(error) if error else "sign-in required")
    assert isinstance(principal, Principal)
    return principal


def require(router: Any, role: Role) -> Principal:
    """A signed-in person in ``role`` or higher, or 401/403."""
    principal = caller(router)
    if principal.kind != "user" or not principal.allows(role):
        raise ForbiddenError(f"this needs the {role.value} group")
    return principal


def require_machine_or(router: Any, role: Role) -> Principal:
    """A machine (IAM, on ``/machine`` routes) or a person in ``role`` or higher."""
    principal = caller(router)
    if principal.kind == "iam":
        return principal
    return require(router, role)
