"""The input folder of ``kizuna migrate pinpoint DIR``: which file holds which response,
read and checked against Pinpoint's own model (:mod:`kizuna_tools.migrate.shapes`).

::

    DIR/endpoints/*.json|.jsonl|.ndjson|.gz   the endpoint export (one EndpointResponse a line)
    DIR/segments.json                         GetSegments
    DIR/campaigns.json                        GetCampaigns
    DIR/journeys/*.json                       GetJourney each (or ListJourneys)
    DIR/templates/email/*.json                GetEmailTemplate each
    DIR/templates/sms/*.json                  GetSmsTemplate each
    DIR/templates/push/*.json                 GetPushTemplate each
    DIR/application-settings.json             GetApplicationSettings (optional)

A response is read as the AWS CLI prints it (``{"SegmentsResponse": {...}}``) or as the
REST body, every number as written (a fraction as a ``Decimal``, never through a float). A
file that does not fit its shape is reported and not read.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from kizuna.domain import strict_json
from kizuna_tools.migrate import shapes

# relative path (glob) -> the output shape its document is
DOCUMENTS: dict[str, str] = {
    "segments.json": "GetSegmentsResponse",
    "campaigns.json": "GetCampaignsResponse",
    "application-settings.json": "GetApplicationSettingsResponse",
    "journeys/*.json": "GetJourneyResponse",
    "templates/email/*.json": "GetEmailTemplateResponse",
    "templates/sms/*.json": "GetSmsTemplateResponse",
    "templates/push/*.json": "GetPushTemplateResponse",
}
LIST_JOURNEYS = "ListJourneysResponse"


def shape_of(rel: str, document: Any = None) -> str | None:
    """The response shape of a file of the layout (None: not one of its files)."""
    for pattern, shape in DOCUMENTS.items():
        if fnmatch.fnmatch(rel, pattern) and rel.count("/") == pattern.count("/"):
            if shape == "GetJourneyResponse" and _is_journey_list(document):
                return LIST_JOURNEYS
            return shape
    return None


def _is_journey_list(document: Any) -> bool:
    return isinstance(document, Mapping) and (
        "JourneysResponse" in document or ("Item" in document and "Activities" not in document)
    )


def check_document(rel: str, document: Any) -> list[str]:
    """Problems of one document against its response shape (the payload, either form)."""
    shape = shape_of(rel, document)
    if shape is None:
        return [f"{rel}: not a file of the input layout"]
    payload, payload_shape = shapes.unwrap(document, shape)
    return [f"{rel}: {p}" for p in shapes.check(payload, payload_shape)]


def load(path: Path, rel: str) -> tuple[Any, list[str]]:
    """(payload, problems) of one response file; payload None when it cannot be used."""
    try:
        # every number as written, as the endpoint export is read: through a float,
        # 999999999999.999999 was 1000000000000.0 before anything could say so; a key given
        # twice or NaN is refused (json kept the last of the two, read NaN as a number)
        document = strict_json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{rel}: cannot be read ({type(exc).__name__})"]
    except json.JSONDecodeError as exc:
        return None, [f"{rel}: not JSON ({exc.msg}, line {exc.lineno})"]
    except (strict_json.RepeatedKey, strict_json.NotJsonNumber) as exc:
        return None, [f"{rel}: not JSON the migration reads ({exc})"]
    except RecursionError:
        return None, [f"{rel}: not JSON (nested too deep)"]
    problems = check_document(rel, document)
    if problems:
        return None, problems
    shape = shape_of(rel, document)
    assert shape is not None
    payload, _ = shapes.unwrap(document, shape)
    return payload, []


def files(directory: Path, pattern: str) -> list[tuple[Path, str]]:
    """(path, relative name) of the files matching ``pattern`` under ``directory``."""
    return sorted(
        (p, p.relative_to(directory).as_posix())
        for p in directory.glob(pattern)
        if p.is_file() and not p.name.startswith(".")
    )
