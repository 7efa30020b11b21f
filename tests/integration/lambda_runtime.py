"""Calling a function's handler as Lambda would: its module loaded from ``functions/<name>``
and a context object with what Powertools reads."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"


def load_handler(function: str) -> ModuleType:
    """``functions/<function>/handler.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(
        f"kizuna_fn_{function}", ROOT / "functions" / function / "handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """The context of one invocation of ``kizuna-<function>``."""

    function: str
    memory_limit_in_mb: int = 512
    timeout_ms: int = 30_000
    aws_request_id: str = "req-1"

    @property
    def function_name(self) -> str:
        return f"kizuna-{self.function}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms
