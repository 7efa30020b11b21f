"""``kizuna local``, ``kizuna programs`` and ``kizuna render``."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from kizuna_tools.cli.options import Config, CustomersTable, Endpoint

local_app = typer.Typer(
    help="Run Kizuna on the local runtime (moto, in-process).", no_args_is_help=True
)
programs_app = typer.Typer(help="Validate and show programs.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()
DEFAULT_API_PORT = 8080  # `kizuna local serve`: the HTTP API and the console


@local_app.command("run")
def local_run(
    customers: Annotated[int, typer.Option(min=1, help="synthetic customers")] = 1_000,
    days: Annotated[int, typer.Option(min=1, max=730, help="simulated days")] = 30,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic shop")] = 42,
    summary_json: Annotated[Path | None, typer.Option(help="also write the summary here")] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="write the HTML report and CSVs here ('' for none)")
    ] = Path("out/demo-report"),
    config: Config = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="inject faults into the app's AWS calls, e.g. "
            "'dynamodb=0.1,sesv2=0.1,dynamodb.TransactWriteItems=0.2:after,kinds=throttle+after"
            "+timeout+error+duplicate,seed=7' (seed defaults to --seed; docs/LOCAL.md)"
        ),
    ] = None,
    stall_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="seconds without a completed invocation or a clock move before the run "
            "stops with every thread's stack (exit status 70)",
        ),
    ] = 120.0,
    reference: Annotated[
        bool,
        typer.Option(
            help="with --faults: first run the same seed without faults, then print what "
            "the faults changed (messages, failures, dead letters, executions)"
        ),
    ] = False,
    engagement: Annotated[
        bool,
        typer.Option(
            help="simulated recipients: SES delivery, open, click, bounce and complaint events "
            "for the emails sent, through the feedback function, and the app's push.opened "
            "for the pushes sent, through ingest (docs/LOCAL.md)"
        ),
    ] = True,
    serve: Annotated[
        bool,
        typer.Option(
            help="then serve the shop's app (console, API, moto's endpoint) with the clock "
            "stopped where the run ended, until Ctrl-C (like `kizuna local serve`)"
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="with --serve: moto's endpoint")] = 4566,
    api_port: Annotated[
        int, typer.Option(help="with --serve: the HTTP API and the console")
    ] = DEFAULT_API_PORT,
) -> None:
    """Replay a synthetic shop through the real app and print what happened.

    The functions' own output (JSON logs, metrics) goes to ``out/local-run.log``.
    """
    from kizuna_tools.demo import demo_session, run_demo
    from kizuna_tools.local.faults import FaultPlan, FaultSpecError
    from kizuna_tools.project import project_config

    plan = None
    if reference and faults is None:
        raise typer.BadParameter("--reference compares with a --faults run", param_hint="--faults")
    if faults is not None:
        try:
            plan = FaultPlan.parse(faults, seed=seed)
        except FaultSpecError as exc:
            raise typer.BadParameter(str(exc), param_hint="--faults") from None
    project = project_config(config)
    console.print(f"configuration: {project.source}", markup=False, highlight=False)
    log_path = Path("out/local-run.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    baseline = None
    if reference:
        with _stdout_to(log_path):
            baseline = run_demo(
                customers,
                days,
                seed,
                report_dir=None,
                config=project.raw,
                stall_timeout=stall_timeout,
                engagement=engagement,
            ).as_dict()
        out.print(f"reference run without faults: {baseline['wall_seconds']} s")
    with contextlib.ExitStack() as keep_open:
        with (
            Progress(
                TextColumn("[bold]simulating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("days"),
                TimeElapsedColumn(),
                console=console,
            ) as bar,
            _stdout_to(log_path),
        ):
            task = bar.add_task("days", total=days)
            cloud, summary = keep_open.enter_context(
                demo_session(
                    customers,
                    days,
                    seed,
                    progress=lambda done, _: bar.update(task, completed=done),
                    report_dir=(
                        report_dir if report_dir and str(report_dir) not in ("", ".") else None
                    ),
                    config=project.raw,
                    faults=plan,
                    stall_timeout=stall_timeout,
                    engagement=engagement,
                )
            )
            if not serve:
                keep_open.close()  # the run is over: close the cloud now
        _report_run(summary, log_path, baseline, summary_json)
        if serve:
            serve_cloud(cloud, port, api_port, speed=0, users=True, outputs=None, log_path=log_path)
    if not serve:
        again = serve_command(customers, days, seed, config, faults, engagement, api_port, port)
        out.print(
            f"open the console on this shop: `{again}`, then http://127.0.0.1:{api_port}/console",
            markup=False,
            highlight=False,
        )


def serve_command(
    customers: int,
    days: int,
    seed: int,
    config: Path | None,
    faults: str | None,
    engagement: bool,
    api_port: int,
    port: int,
) -> str:
    """The command that runs this very shop again and serves it: ``make console`` only for
    the demo's own run (it takes no options), else ``kizuna local run --serve`` with every
    option that shaped the run."""
    words = ["kizuna", "local", "run", "--serve", "--customers", str(customers)]
    words += ["--days", str(days)]
    if seed != 42:
        words += ["--seed", str(seed)]
    if config is not None:
        words += ["--config", str(config)]
    if faults is not None:
        words += ["--faults", faults]
    if not engagement:
        words.append("--no-engagement")
    if port != 4566:
        words += ["--port", str(port)]
    if api_port != DEFAULT_API_PORT:
        words += ["--api-port", str(api_port)]
    if words[4:] == ["--customers", "1000", "--days", "30"]:
        return "make console"
    return shlex.join(words)


def _report_run(
    summary: Any, log_path: Path, baseline: dict[str, object] | None, summary_json: Path | None
) -> None:
    out.print(f"function logs: {log_path}")
    data = summary.as_dict()
    _print_summary(data)
    if baseline is not None:
        _print_differences(baseline, data)
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        out.print(f"summary: {summary_json}")
    if summary.report:
        out.print(f"report: {summary.report} (open it in a browser; CSVs beside it)")
    for location, rows in summary.print_files.items():
        out.print(f"direct-mail print file: {location} ({rows} rows)")
    if summary.line_messages:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.line_messages.items())
        flex = f"; a Flex message: {summary.line_flex_sample!r}" if summary.line_flex_sample else ""
        out.print(f"LINE message objects sent: {kinds}{flex}")


COMPARED = ("messages", "outbox", "suppressed", "deferred", "failed", "dlq", "executions")


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _print_differences(baseline: dict[str, object], faulted: dict[str, object]) -> None:
    """What the injected faults changed, against the fault-free run of the same seed."""
    before = _flatten({key: baseline[key] for key in COMPARED})
    after = _flatten({key: faulted[key] for key in COMPARED})
    table = Table(title="with faults vs without (same seed)")
    for column in ("what", "without", "with faults"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            table.add_row(key, str(before.get(key, 0)), str(after.get(key, 0)))
    if not table.row_count:
        table.add_row("(no difference)", "", "")
    out.print(table)


@contextlib.contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 (where the handlers' loggers write) to a file."""
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("ab") as fh:
        os.dup2(fh.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _print_summary(data: dict[str, object]) -> None:
    head = Table(title="Kizuna local run", show_header=False)
    for key in (
        "customers",
        "events",
        "journeys_started",
        "holdouts",
        "deferred",
        "api_calls",
        "wall_seconds",
    ):
        head.add_row(key, str(data[key]))
    out.print(head)
    messages = Table(title="messages sent (program x channel)")
    channels = ("email", "sms", "push", "line", "webhook", "dm")
    messages.add_column("program")
    for ch in channels:
        messages.add_column(ch, justify="right")
    for program, per in dict(data["messages"]).items():  # type: ignore[call-overload]
        messages.add_row(program, *(str(per.get(ch, 0)) for ch in channels))
    out.print(messages)
    for key in (
        "suppressed",
        "entries_skipped",
        "conversions",
        "failed",
        "outbox",
        "ranks",
        "segments",
        "lifecycle",
        "executions",
        "occurrences",
        "dlq",
    ):
        table = Table(title=key, show_header=False)
        for k, v in dict(data[key]).items():  # type: ignore[call-overload]
            table.add_row(str(k), json.dumps(v) if isinstance(v, dict) else str(v))
        if not data[key]:
            table.add_row("(none)", "")
        out.print(table)
    faults = data.get("faults")
    if isinstance(faults, dict):
        table = Table(title=f"faults injected ({faults['spec']})", show_header=False)
        table.add_row("total", str(faults["total"]))
        for kind, n in dict(faults["by_kind"]).items():
            table.add_row(kind, str(n))
        for target, kinds in dict(faults["by_target"]).items():
            table.add_row(target, json.dumps(kinds))
        out.print(table)


LOCAL_URL_ENV = "KIZUNA_LOCAL_URL"
LocalUrl = Annotated[
    str,
    typer.Option(
        "--url",
        envvar=LOCAL_URL_ENV,
        help="the local server of `kizuna local serve` (its API port)",
    ),
]


def _instant(value: str | None, name: str) -> datetime | None:
    from kizuna_tools.local.server import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from None


@local_app.command("serve")
def local_serve(
    port: Annotated[int, typer.Option(help="moto's endpoint (every AWS API) on 127.0.0.1")] = 4566,
    api_port: Annotated[
        int, typer.Option(help="the HTTP API and the console on 127.0.0.1 (0: any free port)")
    ] = DEFAULT_API_PORT,
    start: Annotated[
        str | None,
        typer.Option(
            help="the virtual clock's start, an ISO instant or date (e.g. 1997-01-01 to "
            "replay 1997's orders as of 1997); default now"
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(min=0, help="virtual seconds per real second (0: only `clock advance`)"),
    ] = 1.0,
    users: Annotated[
        bool, typer.Option(help="create one console user per group and print the passwords")
    ] = True,
    outputs: Annotated[
        Path, typer.Option(help="write the stack's outputs here (for --outputs of other commands)")
    ] = Path("out/local-outputs.json"),
    config: Config = None,
    content: Annotated[
        Path | None,
        typer.Option(
            help="folder holding programs/, templates/ and segments/ (default: the checkout's), "
            "e.g. what `kizuna migrate pinpoint` wrote",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the app on 127.0.0.1: moto's endpoint, the HTTP API and the console, with the
    virtual clock running from --start at --speed, and the project's configuration (the one
    `kizuna import` finds too)."""
    from kizuna_tools.demo import local_context, prepare_channels
    from kizuna_tools.local.app import default_project_root, kizuna_template
    from kizuna_tools.local.cloud import LocalCloud
    from kizuna_tools.project import project_config

    begin = _instant(start, "--start") or datetime.now(UTC)
    project = project_config(config)
    console.print(f"configuration: {project.source}", markup=False, highlight=False)
    template = kizuna_template(local_context(project.raw, content))
    with LocalCloud.from_template(
        template, project_root=default_project_root(), start=begin, content_dir=content
    ) as cloud:
        prepare_channels(cloud)
        serve_cloud(cloud, port, api_port, speed=speed, users=users, outputs=outputs)


def serve_cloud(
    cloud: Any,
    port: int,
    api_port: int,
    *,
    speed: float,
    users: bool,
    outputs: Path | None,
    log_path: Path | None = None,
) -> None:
    """Serve an open cloud, print what it created and how to reach it, block until Ctrl-C."""
    handle = cloud.serve(port, api_port=api_port, speed=speed)
    try:
        passwords = _demo_users(cloud) if users else {}
        machine = _machine_credentials(cloud)
        if outputs is not None:
            outputs.parent.mkdir(parents=True, exist_ok=True)
            outputs.write_text(json.dumps(cloud.outputs, indent=2) + "\n", encoding="utf-8")
        _print_served(cloud, handle, passwords, machine, outputs)
        if log_path is not None:
            with _stdout_to(log_path):
                handle.wait()
        else:
            handle.wait()
    finally:
        handle.stop()


def _demo_users(cloud: Any) -> dict[str, tuple[str, str]]:
    """group -> (user name, password) of one new user per group of the user pool."""
    if not cloud.find("AWS::Cognito::UserPool"):
        return {}
    made = {}
    for group in cloud.user_groups():
        username = cloud.username_for(group)
        made[group] = (username, cloud.add_user(username, group))
    return made


def _machine_credentials(cloud: Any) -> tuple[str, str, str]:
    """An IAM user's access key for /machine routes (SigV4, service execute-api)."""
    iam = cloud.client("iam")
    user = iam.create_user(UserName="kizuna-local-machine")["User"]
    key = iam.create_access_key(UserName="kizuna-local-machine")["AccessKey"]
    return str(user["Arn"]), str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def _print_served(
    cloud: Any,
    handle: Any,
    passwords: dict[str, tuple[str, str]],
    machine: tuple[str, str, str],
    outputs: Path | None,
) -> None:
    stack = cloud.describe_stack(handle)
    table = Table(title="Kizuna on 127.0.0.1", show_header=False)
    table.add_row("virtual clock", f"{stack['clock']} (speed {handle.speed:g})")
    table.add_row("AWS endpoint", str(handle.endpoint_url))
    if handle.api_url and stack["http_apis"]:
        table.add_row("console", str(stack["console_url"]))
        table.add_row("API", f"{handle.api_url}/api/ (Bearer id token), /machine/ (SigV4)")
    table.add_row("local controls", f"{handle.api_url}/_local/clock, /_local/stack")
    table.add_row("tables", ", ".join(stack["tables"]))
    table.add_row("buckets", ", ".join(stack["buckets"]) or "-")
    table.add_row("buses", ", ".join(stack["buses"]) or "-")
    for pool in stack["user_pools"]:
        table.add_row("user pool", f"{pool['name']} ({pool['id']})")
    for client in stack["user_pool_clients"]:
        table.add_row("user pool client", f"{client['name']} ({client['id']})")
    for group, (username, password) in passwords.items():
        table.add_row(f"console user ({group})", f"{username}  password {password}")
    table.add_row("machine (IAM)", f"{machine[0]}  key {machine[1]}  secret {machine[2]}")
    if outputs is not None:
        table.add_row("outputs", str(outputs))
    out.print(table)
    bus = stack["buses"][0] if stack["buses"] else "default"
    out.print(
        f"Try:\n  aws --endpoint-url {handle.endpoint_url} events put-events --entries "
        f'\'[{{"EventBusName":"{bus}","Source":"shop","DetailType":'
        f'"app.opened","Detail":"{{\\"customer_id\\":\\"c1\\",'
        f'\\"occurred_at\\":\\"{stack["clock"][:19]}Z\\"}}"}}]\'\n'
        f"  kizuna local clock advance --by 2h --url {handle.api_url}\n"
        f"  kizuna scoring run --local {handle.api_url}\n"
        "Ctrl-C to stop.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


clock_app = typer.Typer(help="The virtual clock of `kizuna local serve`.", no_args_is_help=True)
local_app.add_typer(clock_app, name="clock")
user_app = typer.Typer(help="Console users of `kizuna local serve`.", no_args_is_help=True)
local_app.add_typer(user_app, name="user")


def local_call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A request to the local server's controls; its refusal is the command's error."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - checked below: the local server only
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    if not request.full_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise typer.BadParameter("the local server is on 127.0.0.1", param_hint="--url")
    try:
        with urllib.request.urlopen(request, timeout=900) as response:  # noqa: S310 - local
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        message = json.loads(error.read() or b"{}").get("message", str(error))
        console.print(f"Error: {message}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except urllib.error.URLError as error:
        console.print(
            f"Error: no `kizuna local serve` at {url} ({error.reason})",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(code=2) from None


@clock_app.command("show")
def clock_show(url: LocalUrl = f"http://127.0.0.1:{DEFAULT_API_PORT}") -> None:
    """Print the virtual time."""
    state = local_call(url, "GET", "/_local/clock")
    out.print(f"{state['now']} (speed {state['speed']:g})", markup=False, highlight=False)


@clock_app.command("advance")
def clock_advance(
    by: Annotated[str | None, typer.Option(help="a duration: 2h, 1d12h, 90m, 30s")] = None,
    to: Annotated[str | None, typer.Option(help="an ISO instant or date to move to")] = None,
    url: LocalUrl = f"http://127.0.0.1:{DEFAULT_API_PORT}",
) -> None:
    """Move the virtual clock forward: what falls due meanwhile runs, in time order."""
    from kizuna_tools.local.server import parse_duration

    if (by is None) == (to is None):
        raise typer.BadParameter("give one of --by or --to")
    if by is not None:
        try:
            parse_duration(by)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--by") from None
        body = {"by": by}
    else:
        target = _instant(to, "--to")
        assert target is not None
        body = {"to": target.isoformat()}
    state = local_call(url, "POST", "/_local/clock", body)
    out.print(f"virtual clock: {state['now']}", markup=False, highlight=False)


@user_app.command("add")
def user_add(
    username: Annotated[
        str, typer.Argument(help="user name (an email address if the pool signs in with email)")
    ],
    group: Annotated[str, typer.Option(help="viewer, marketer or admin")] = "marketer",
    url: LocalUrl = f"http://127.0.0.1:{DEFAULT_API_PORT}",
) -> None:
    """Add a console user to the served user pool; prints its password."""
    made = local_call(url, "POST", "/_local/users", {"username": username, "group": group})
    out.print(
        f"{made['username']} ({made['group']}): password {made['password']}",
        markup=False,
        highlight=False,
    )


@programs_app.command("validate")
def programs_validate(
    directory: Annotated[Path, typer.Argument(help="folder of program YAML")] = Path("programs"),
    templates: Annotated[Path, typer.Option(help="templates folder")] = Path("templates"),
    segments: Annotated[Path, typer.Option(help="segments folder")] = Path("segments"),
    config: Config = None,
) -> None:
    """Check every program as synthesis does: schema, steps, graph, conditions (fields
    included), segments, templates, and its compiled state machine (what CreateStateMachine
    checks; also the npm asl-validator if installed); and render every send step's template
    (each locale, each channel) with the context a send gives it."""
    from kizuna.delivery.templates import Renderer
    from kizuna.events.custom import vocabulary
    from kizuna.programs.loader import load_programs
    from kizuna.segments import SegmentError, load_segments
    from kizuna_tools.aslcheck import check_programs, find_asl_validator
    from kizuna_tools.project import project_config
    from kizuna_tools.templatecheck import program_template_problems

    cfg = project_config(config).config
    vocab = vocabulary(cfg)  # the attributes and events the configuration declares
    problems: list[str] = []
    segment_names: list[str] = []
    if segments.is_dir():
        try:
            segment_names = list(load_segments(segments, vocab))
        except SegmentError as exc:
            problems += [f"{segments}: {p}" for p in exc.problems]
    programs, issues = load_programs(
        directory,
        templates=Renderer(templates, default_locale=cfg.contact.default_locale),
        segment_names=segment_names,
        vocab=vocab,
        webhooks=tuple(cfg.webhooks),
    )
    problems += [str(issue) for issue in issues]
    problems += [
        str(issue)
        for issue in program_template_problems(
            programs, Renderer(templates, default_locale=cfg.contact.default_locale), cfg, directory
        )
    ]
    asl = check_programs(programs)
    for program_id, found in asl.items():
        file = next(iter(sorted(directory.glob(f"{program_id}.y*ml"))), directory / program_id)
        problems += [f"{file} (state machine): {problem}" for problem in found]
    for problem in problems:
        _fail_line(problem)
    checked = "ASL valid" + (" (+ asl-validator)" if find_asl_validator() else "")
    for p in programs:
        if p.id not in asl:
            out.print(
                f"[green]✓[/green] {escape(p.id)}: {len(p.steps)} steps, "
                f"trigger {escape(p.trigger.event)}, {checked}"
            )
    if problems:
        raise typer.Exit(code=1)


def _fail_line(text: str) -> None:
    """A problem, its text as written (a regex's ``[a-z]`` or ``[step x]`` is not rich
    markup) on one line (to grep)."""
    out.print(Text.assemble(("✗ ", "red"), text), soft_wrap=True, highlight=False)


@programs_app.command("show")
def programs_show(
    name: Annotated[str, typer.Argument(help="program id")],
    directory: Annotated[Path, typer.Option(help="folder of program YAML")] = Path("programs"),
    config: Config = None,
) -> None:
    """Print a program's journey as a Mermaid flowchart."""
    from kizuna.events.custom import vocabulary
    from kizuna.programs.diagram import mermaid
    from kizuna.programs.loader import load_program
    from kizuna_tools.project import project_config

    path = directory / f"{name}.yaml"
    if not path.exists():
        raise typer.BadParameter(f"no program {name!r} in {directory}", param_hint="NAME")
    program = load_program(path, vocab=vocabulary(project_config(config).config))
    out.print(mermaid(program), markup=False, highlight=False)


def render_preview(
    program: Annotated[str, typer.Argument(help="program id")],
    step: Annotated[str, typer.Argument(help="send step id")],
    customer: Annotated[str | None, typer.Option(help="customer id (read from the table)")] = None,
    locale: Annotated[
        str, typer.Option(help="sample customer's locale (without --customer)")
    ] = "ja",
    customers_table: CustomersTable = None,
    endpoint_url: Endpoint = None,
    html_out: Annotated[Path, typer.Option(help="where to write the email HTML")] = Path(
        "out/preview.html"
    ),
    programs_dir: Annotated[Path, typer.Option()] = Path("programs"),
    templates_dir: Annotated[Path, typer.Option()] = Path("templates"),
    config: Config = None,
) -> None:
    """Preview a send step's message on every channel it may use."""
    from kizuna.delivery.samples import (
        rank_names,
        sample_coupon,
        sample_customer,
        sample_trigger,
    )
    from kizuna.delivery.templates import Renderer, RenderError, build_context
    from kizuna.events.custom import vocabulary
    from kizuna.programs.loader import load_program
    from kizuna.programs.model import SendStep
    from kizuna_tools.project import project_config

    cfg = project_config(config).config
    prog = load_program(programs_dir / f"{program}.yaml", vocab=vocabulary(cfg))
    send = prog.step(step)
    if not isinstance(send, SendStep):
        raise typer.BadParameter(f"{step} is not a send step", param_hint="STEP")
    if customer:
        import boto3

        from kizuna.adapters.dynamodb import DynamoStore

        if not customers_table:
            raise typer.BadParameter("--customers-table (or CUSTOMERS_TABLE) is needed")
        store = DynamoStore(
            boto3.resource("dynamodb", endpoint_url=endpoint_url), customers_table, customers_table
        )
        found = store.get_customer(customer)
        if found is None:
            raise typer.BadParameter(f"no customer {customer!r}", param_hint="--customer")
        who = found
    else:
        who = sample_customer(locale, custom=cfg.custom, ranks=rank_names(cfg))
    now = datetime.now(UTC)
    coupon = sample_coupon(
        send.coupon, b"preview", prog.id, who.customer_id, "preview", send.id, now
    )
    context = build_context(
        who,
        program=prog.id,
        step=send.id,
        loyalty_config=cfg.loyalty,
        coupon=coupon,
        recommendations=[p.model_dump() for p in cfg.catalog.best_sellers[:3]],
        extra={
            "cart": {"item_count": 2, "value": 3600, "currency": "JPY", "product_ids": ["tea-001"]},
            # what a member of the program carries to its sends (docs/PROGRAMS.md)
            "trigger": sample_trigger(
                prog.trigger.event, vocabulary(cfg), cfg, now, program=prog.id
            ),
        },
        unsubscribe_url="https://example.com/unsubscribe?t=preview",
        custom=cfg.custom,
    )
    renderer = Renderer(templates_dir, default_locale=cfg.contact.default_locale)
    failed = False
    for channel in send.channels:
        try:
            message = renderer.render(prog.id, send.template, channel, who.locale, context)
        except RenderError as exc:
            out.print(f"[red]{escape(f'{channel}: {exc}')}[/red]")
            failed = True
            continue
        data = message.model_dump()
        if channel == "email":
            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(str(data.pop("html")), encoding="utf-8")
            data["html"] = str(html_out)
        out.print(f"[bold]{channel}[/bold]")
        for key, value in data.items():
            if key != "channel":
                out.print(f"  {key}: {value}", markup=False)
    if failed:
        raise typer.Exit(code=1)
