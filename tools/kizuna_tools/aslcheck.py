"""State machine definitions checked by both validators: ours and the npm ``asl-validator``.

:func:`kizuna.programs.asl.validate_definition` is what the runtime package ships; the npm
``asl-validator`` (pinned in ``package.json``, installed by ``make test``) is a second,
independent opinion, run where ``node_modules`` has it::

    problems = check_definitions({"program x": definition})   # {name: [problem, ...]}

:func:`state_machine_definitions` takes every ``AWS::StepFunctions::StateMachine`` of a
synthesized template, its ``DefinitionString`` joined and its ``DefinitionSubstitutions``
applied, references resolved to placeholders that look like what CloudFormation would give.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kizuna.programs.asl import InvalidDefinition, validate_definition
from kizuna.programs.compiler import compile_program
from kizuna.programs.model import Program

ASL_VALIDATOR = Path("node_modules") / ".bin" / "asl-validator"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "Kizuna",
    "AWS::NoValue": "",
}
_INVALID = re.compile(r'^✕ State machine definition "(?P<file>.*)" is invalid:\s*(?P<rest>.*)\Z')
_VALID = re.compile(r'^✓ State machine definition "(?P<file>.*)" is valid')


class AslValidatorError(RuntimeError):
    """The npm asl-validator could not run (not a verdict on a definition)."""


def find_asl_validator(root: Path | None = None) -> Path | None:
    """``node_modules/.bin/asl-validator`` under ``root`` (default: the checkout), if present."""
    if root is None:
        from kizuna_tools.local.app import default_project_root

        try:
            root = default_project_root()
        except FileNotFoundError:
            return None
    path = root / ASL_VALIDATOR
    return path if path.exists() else None


def run_asl_validator(
    definitions: Mapping[str, Mapping[str, Any]], executable: Path
) -> dict[str, list[str]]:
    """The npm asl-validator's problems with each definition (by name; [] when valid)."""
    if not definitions:
        return {}
    with tempfile.TemporaryDirectory(prefix="kizuna-asl-") as tmp:
        files: dict[str, str] = {}
        args = [str(executable)]
        for i, (name, definition) in enumerate(definitions.items()):
            path = Path(tmp) / f"definition-{i}.json"
            path.write_text(json.dumps(definition))
            files[str(path)] = name
            args += ["--json-path", str(path)]
        done = subprocess.run(  # noqa: S603 - our own executable and temp files, no shell
            args, capture_output=True, text=True, timeout=120, check=False
        )
    if done.returncode not in (0, 1):
        raise AslValidatorError(
            f"asl-validator exited with {done.returncode}: {done.stderr.strip()}"
        )
    problems: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        invalid, valid = _INVALID.match(line), _VALID.match(line)
        if invalid:
            current = problems.setdefault(files[invalid["file"]], [])
            if invalid["rest"].strip():
                current.append(invalid["rest"].strip())
        elif valid:
            problems.setdefault(files[valid["file"]], [])
            current = None
        elif current is not None and line.strip():
            current.append(line.strip())
    missing = sorted(name for name in files.values() if name not in problems)
    if missing:
        raise AslValidatorError(f"asl-validator gave no verdict on {', '.join(missing)}")
    if done.returncode == 1 and not any(problems.values()):
        raise AslValidatorError(f"asl-validator failed without a reason: {done.stderr.strip()}")
    return problems


def check_definitions(
    definitions: Mapping[str, Mapping[str, Any]],
    *,
    npm: bool = True,
    root: Path | None = None,
) -> dict[str, list[str]]:
    """Both validators' problems with each definition, by name (only names with problems).

    The npm asl-validator runs when ``npm`` and ``node_modules`` has it; its problems are
    prefixed ``asl-validator:``.
    """
    found: dict[str, list[str]] = {
        name: validate_definition(definition) for name, definition in definitions.items()
    }
    executable = find_asl_validator(root) if npm else None
    if executable is not None:
        for name, problems in run_asl_validator(definitions, executable).items():
            found[name] += [f"asl-validator: {p}" for p in problems]
    return {name: problems for name, problems in found.items() if problems}


def check_programs(
    programs: Iterable[Program], *, npm: bool = True, root: Path | None = None
) -> dict[str, list[str]]:
    """Each program's state machine problems, by program id (only programs with problems):
    the compiler's own check (it refuses to return a bad definition), then both validators
    on what it returns."""
    found: dict[str, list[str]] = {}
    definitions: dict[str, dict[str, Any]] = {}
    for program in programs:
        try:
            definitions[program.id] = compile_program(program)
        except InvalidDefinition as exc:
            found[program.id] = exc.problems
    found.update(check_definitions(definitions, npm=npm, root=root))
    return found


# --- definitions from a synthesized template ---------------------------------------------
def state_machine_definitions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state machine's definition in ``template``, by logical id, with references
    resolved to placeholders (an ARN for ``Fn::GetAtt ... Arn``, the logical id for ``Ref``)."""
    resources: Mapping[str, Any] = template.get("Resources", {})
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = resource.get("Properties", {})
        if "DefinitionString" in props:
            text = str(_resolve(props["DefinitionString"], resources))
        elif "Definition" in props:
            text = json.dumps(_resolve(props["Definition"], resources))
        else:
            raise ValueError(f"{logical_id}: no DefinitionString or Definition")
        substitutions = _resolve(props.get("DefinitionSubstitutions") or {}, resources)
        for key, value in substitutions.items():
            text = text.replace("${" + key + "}", str(value))
        found[logical_id] = json.loads(text)
    return found


def _arn(logical_id: str, resources: Mapping[str, Any]) -> str:
    rtype = str(resources.get(logical_id, {}).get("Type", "AWS::Unknown::Resource"))
    service, kind = [*rtype.split("::"), "", ""][1:3]
    if rtype == "AWS::Lambda::Function":
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
    if rtype == "AWS::StepFunctions::StateMachine":
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"
    if rtype in ("AWS::SQS::Queue", "AWS::SNS::Topic"):
        return f"arn:aws:{service.lower()}:{REGION}:{ACCOUNT}:{logical_id}"
    return f"arn:aws:{service.lower()}:{REGION}:{ACCOUNT}:{kind.lower()}/{logical_id}"


def _ref(name: str, resources: Mapping[str, Any]) -> str:
    if name in PSEUDO:
        return PSEUDO[name]
    rtype = resources.get(name, {}).get("Type")
    if rtype in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
        return _arn(name, resources)
    if rtype == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    return name


def _resolve(value: Any, resources: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_resolve(v, resources) for v in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _ref(str(arg), resources)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            if attribute == "Arn":
                return _arn(logical_id, resources)
            return f"{logical_id}.{attribute}"
        if key == "Fn::Join":
            separator, parts = arg
            return str(separator).join(str(_resolve(p, resources)) for p in parts)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            return re.sub(
                r"\$\{([^}!]+)\}",
                lambda m: _sub(m.group(1), _resolve(variables, resources), resources),
                text,
            )
        if key == "Fn::Select":
            index, items = arg
            return _resolve(items, resources)[int(index)]
        if key == "Fn::Split":
            separator, text = arg
            return str(_resolve(text, resources)).split(separator)
    return {k: _resolve(v, resources) for k, v in value.items()}


def _sub(name: str, variables: Mapping[str, Any], resources: Mapping[str, Any]) -> str:
    if name in variables:
        return str(variables[name])
    if "." in name and name not in PSEUDO:
        logical_id, attribute = name.split(".", 1)
        return str(_resolve({"Fn::GetAtt": [logical_id, attribute]}, resources))
    return _ref(name, resources)
