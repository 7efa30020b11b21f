"""The configuration travels in every function's environment, which AWS caps at 4 KB: a
large one is compressed, and one that still does not fit fails synthesis, not the deploy."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from kizuna.runtime.config import (
    COMPRESSED_PREFIX,
    KizunaConfig,
    decode_config,
    encode_config,
    load_config,
)
from kizuna_infra.limits import TemplateLimitError, check_template, environment_bytes
from kizuna_tools.local.app import kizuna_template


def declared(count: int, seed: int = 7) -> dict[str, Any]:
    """A configuration declaring ``count`` attributes with random names and enums (which
    compress badly, as real names do not repeat)."""
    rng = random.Random(seed)

    def word(n: int) -> str:
        return rng.choice(string.ascii_lowercase) + "".join(
            rng.choice(string.ascii_lowercase + string.digits) for _ in range(n - 1)
        )

    attributes = [
        {"name": word(12), "type": "string", "enum": [word(10) for _ in range(4)]}
        for _ in range(count)
    ]
    return {"custom": {"attributes": attributes}}


def test_a_small_configuration_travels_as_readable_json() -> None:
    raw = json.dumps({"contact": {"max_per_day": 3}})
    assert encode_config(raw) == raw
    assert load_config(encode_config(raw)).contact.max_per_day == 3


def test_a_large_configuration_travels_compressed_and_reads_back_the_same() -> None:
    raw = json.dumps(declared(30), separators=(",", ":"))
    value = encode_config(raw)
    assert value.startswith(COMPRESSED_PREFIX) and len(value) < len(raw)
    assert decode_config(value) == raw
    assert load_config(value) == KizunaConfig.model_validate_json(raw)


def test_a_damaged_compressed_value_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="does not decompress"):
        decode_config(COMPRESSED_PREFIX + "not base64!")


def test_a_configuration_too_large_even_compressed_fails_synthesis() -> None:
    with pytest.raises(TemplateLimitError, match=r"environment of about .* over 4,096") as err:
        kizuna_template({"kizuna:config": declared(120)})
    assert "KIZUNA_CONFIG" in str(err.value)


def test_the_check_names_every_function_over_the_limit() -> None:
    big = {
        "Type": "AWS::Lambda::Function",
        "Properties": {"Environment": {"Variables": {"X": "y" * 5000}}},
    }
    assert environment_bytes(big) > 4096
    with pytest.raises(TemplateLimitError, match="Big: environment"):
        check_template({"Resources": {"Big": big}})
    check_template({"Resources": {}})  # nothing to refuse


def test_a_stack_name_too_long_for_the_environment_estimate_is_refused() -> None:
    import aws_cdk as cdk

    from kizuna_infra.stack import KizunaStack

    with pytest.raises(ValueError, match="at most 40 characters"):
        KizunaStack(cdk.App(), "K" * 41)
