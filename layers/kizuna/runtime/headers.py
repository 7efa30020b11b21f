"""Response headers every HTML answer of Kizuna carries, whichever function gives it: the API's
console (kizuna.api.app adds its own restrictive policy around them) and the function URL's
pages (the preference page, one-click's answers, a tracked link's refusal)."""

from __future__ import annotations

from typing import Final

# No other site may show the page in a frame (clickjacking: our buttons under its own).
# ``X-Frame-Options`` for browsers that do not read CSP's ``frame-ancestors``.
FRAME_ANCESTORS: Final = "frame-ancestors 'none'"
NO_FRAMING: Final = {"Content-Security-Policy": FRAME_ANCESTORS, "X-Frame-Options": "DENY"}
