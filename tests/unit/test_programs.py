"""Programs: the seed programs load and compile; the validator catches each class of error
with file, step and a clear message."""

import json
from pathlib import Path

import pytest

from kizuna.delivery.templates import Renderer
from kizuna.programs.compiler import compile_program, estimated_transitions
from kizuna.programs.diagram import mermaid
from kizuna.programs.loader import ProgramError, load_program, load_programs
from kizuna.programs.model import Program
from tests.factories import sample_program

ROOT = Path(__file__).resolve().parents[2]
SEEDS = {
    "second-purchase-coupon",
    "post-purchase-recommendation",
    "winback-before-dormancy",
    "points-to-next-rank",
    "rank-up-congratulations",
    "champions-care",
    "cart-abandonment",
}

GOOD = sample_program(
    "{id: pause, type: wait, days: 1}",
    "{id: check, type: branch, condition: {rank: [Gold]}, then: bye, else: done}",
    "{id: bye, type: send, channel: push, template: bye, next: done}",
    "{id: done, type: exit}",
)


def write(tmp_path: Path, text: str, name: str = "sample") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def issues(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProgramError) as info:
        load_program(write(tmp_path, text))
    return [str(i) for i in info.value.issues]


def test_the_seven_seed_programs_load_and_compile() -> None:
    programs, problems = load_programs(ROOT / "programs")
    assert problems == []
    assert {p.id for p in programs} == SEEDS
    for program in programs:
        asl = compile_program(program)
        # no Wait first: a journey timer starts each execution at its instant
        assert asl["States"][asl["StartAt"]]["Type"] in ("Choice", "Task")
        json.dumps(asl)  # serialisable
        assert mermaid(program).startswith("flowchart TD")


def test_waits_adding_up_to_more_than_an_execution_lasts_are_refused(tmp_path: Path) -> None:
    # given: send, 200 days, send, 200 days, send: one execution (the program starts with a
    # send) would wait 400 days, and Step Functions stops it after a year
    long = sample_program(
        "{id: w1, type: wait, days: 200}",
        "{id: again, type: send, channels: [email], template: hello}",
        "{id: w2, type: wait, days: 200}",
        "{id: last, type: send, channels: [email], template: hello}",
    )
    (found,) = issues(tmp_path, long)
    assert "hello -> w1 -> again -> w2 -> last add up to 400 days" in found
    assert "at most 364 days" in found
    # a branch's two sides are two paths: 200 + 100 days on each is within a year
    sides = sample_program(
        "{id: w1, type: wait, days: 200}",
        "{id: check, type: branch, condition: {rank: [Gold]}, then: a, else: b}",
        "{id: a, type: wait, days: 100, next: done}",
        "{id: b, type: wait, days: 100, until_local_time: '09:00', next: done}",
        "{id: done, type: exit}",
    )
    assert load_program(write(tmp_path, sides)).id == "sample"
    # a first wait is the cohort's journey timer: 300 days of it and 200 more run
    timer_first = sample_program(
        "{id: w2, type: wait, days: 200}", "{id: last, type: send, channels: [email], template: x}"
    ).replace("steps:\n", "steps:\n  - {id: w0, type: wait, days: 300}\n")
    assert load_program(write(tmp_path, timer_first)).id == "sample"
    # a first wait until a local time is the timer's too, its local time included
    local_first = sample_program("{id: w2, type: wait, days: 364}", "{id: last, type: exit}")
    local_first = local_first.replace(
        "steps:\n", "steps:\n  - {id: w0, type: wait, until_local_time: '09:00'}\n"
    )
    assert load_program(write(tmp_path, local_first)).id == "sample"
    # an at_once program's waits all count: a group its entry deferred waits them in one
    at_once = long.replace("steps:\n", "start: at_once\nsteps:\n")
    (found,) = issues(tmp_path, at_once)
    assert "add up to 400 days" in found
    # with a local time on the longer side it is a day over
    over = sides.replace("days: 100, next", "days: 164, until_local_time: '09:00', next")
    (found,) = issues(tmp_path, over)
    assert "hello -> w1 -> check -> a -> done add up to 365 days" in found


def test_one_program_in_two_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "sample.yml").write_text(GOOD)
    programs, problems = load_programs(tmp_path)
    assert [p.id for p in programs] == ["sample", "sample"]
    (problem,) = map(str, problems)
    assert problem == (
        f"{tmp_path / 'sample.yml'}: program id 'sample' is also used by "
        f"{tmp_path / 'sample.yaml'}: keep one of the two files"
    )


def test_good_program_compiles_to_the_expected_states(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, GOOD))
    states = compile_program(program)["States"]
    assert states["hello"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert states["hello"]["Parameters"]["FunctionName"] == "${SendFunctionArn}"
    # one invocation over the cohort's group: the payload names the group, never a customer
    assert states["hello"]["Parameters"]["Payload"] == {
        "program.$": "$.program",
        "cohort.$": "$.cohort",
        "group.$": "$.group",
        "run.$": "$.run",
        "action": "send",
        "step": "hello",
    }
    assert states["hello"]["Catch"][0]["Next"] == "hello__failed"
    assert {r["ErrorEquals"][0] for r in states["hello"]["Retry"]} >= {"Lambda.ServiceException"}
    # members deferred by quiet hours continue in a child group: the group goes on
    assert states["hello"]["Next"] == "pause"
    assert states["pause"] == {"Type": "Wait", "Seconds": 86400, "Next": "check"}
    # a branch keeps `then` (the else side went to a child group, or left at an exit); the
    # branch and the send it goes on to are one task of the send function: one transition
    check = states["check"]
    assert check["Parameters"]["FunctionName"] == "${SendFunctionArn}"
    assert check["Parameters"]["Payload"]["action"] == "check"
    assert check["Parameters"]["Payload"]["then"] == [{"action": "send", "step": "bye"}]
    assert check["End"] is True and "done" not in states  # the exit: the fused task ends it
    # after a crash that outlasts its retries: the branch alone, then the send alone (with
    # its own __failed)
    assert check["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "check__alone"}
    ]
    alone = states["check__alone"]
    assert alone["Parameters"]["FunctionName"] == "${JourneyFunctionArn}"
    assert "then" not in alone["Parameters"]["Payload"] and alone["Next"] == "bye"
    assert states["bye"]["End"] is True and states["bye"]["Catch"][0]["Next"] == "bye__failed"
    # dispatch (a child group may start at check or bye), then hello, pause, check+bye; no
    # Wait first: the execution is started at its instant (a journey timer)
    assert estimated_transitions(program) == {"min": 4, "max": 4}


def test_a_send_and_the_local_time_after_it_are_one_task_that_answers_the_instant() -> None:
    # Given the cart program: a reminder, then a wait until 19:00 the next evening
    program = next(p for p in load_programs(ROOT / "programs")[0] if p.id == "cart-abandonment")
    states = compile_program(program)["States"]
    # Then the send function sends and answers the group's instant in one invocation, and
    # the Wait waits until it; the crash path sends alone, then asks the journey function
    remind = states["remind"]
    assert remind["Parameters"]["FunctionName"] == "${SendFunctionArn}"
    assert remind["Parameters"]["Payload"]["then"] == [
        {"action": "local_time", "step": "next_evening"}
    ]
    assert remind["ResultSelector"] == {"at.$": "$.Payload.at"}
    assert (remind["ResultPath"], remind["Next"]) == ("$.wait", "next_evening__wait")
    assert states["remind__alone"]["Next"] == "next_evening"
    assert states["remind__alone"]["Catch"][0]["Next"] == "remind__failed"
    assert states["next_evening"]["Next"] == "next_evening__wait"
    # start: at_once: remind + its instant run at entry; the cohort due at 19:00, started
    # then by its timer, enters the Choice and cart_still_open + email (a window program: 4,
    # with remind's task and its instant's Wait)
    assert estimated_transitions(program) == {"min": 2, "max": 2}
    windowed = program.model_copy(update={"start": "window"})
    assert estimated_transitions(windowed) == {"min": 4, "max": 4}


def test_a_crashed_send_steps_failed_records_retry_longer_and_never_go_on_without_them(
    tmp_path: Path,
) -> None:
    # Given the `failed` task a send step's Catch goes to
    states = compile_program(load_program(write(tmp_path, GOOD)))["States"]
    failed = states["hello__failed"]
    assert failed["Parameters"]["Payload"]["action"] == "failed"
    # Then it retries every error (a timeout, a 5xx or the function's own) longer than the
    # step did, and has no Catch: if recording fails too, the execution fails (an alarm, a
    # redrive) instead of going on with members who have no ledger entry for the step
    retry = {tuple(r["ErrorEquals"]): r for r in failed["Retry"]}
    assert retry[("States.ALL",)]["MaxAttempts"] >= 5
    assert retry[("States.ALL",)]["MaxAttempts"] > max(
        r["MaxAttempts"]
        for r in states["hello"]["Retry"]
        if r["ErrorEquals"] == ["States.TaskFailed"]
    )
    assert "Catch" not in failed
    assert failed["Next"] == "pause"


def test_numeric_condition_uses_the_journey_function(tmp_path: Path) -> None:
    text = GOOD.replace(
        "condition: {rank: [Gold]}", 'condition: {order_count: [{numeric: [">=", 2]}]}'
    )
    states = compile_program(load_program(write(tmp_path, text)))["States"]
    assert states["check__alone"]["Parameters"]["FunctionName"] == "${JourneyFunctionArn}"
    assert states["check__alone"]["Parameters"]["Payload"]["action"] == "check"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda t: t.replace("template: hello}", "template: hello, colour: red}"),
            "[step hello]: colour: unknown field",
        ),
        (
            lambda t: t.replace("then: bye", "then: nowhere"),
            "[step check]: goes to unknown step 'nowhere'",
        ),
        (
            lambda t: t.replace("type: wait, days: 1", "type: snooze, days: 1"),
            "[step pause]: unknown step type",
        ),
        (
            lambda t: t.replace("then: bye, else: done", "then: done, else: done"),
            "[step bye]: unreachable from the first step",
        ),
        (lambda t: t.replace("next: done}", "next: hello}"), "cycle: "),
        (
            lambda t: t.replace("condition: {rank: [Gold]}", "condition: {rank: Gold}"),
            "[step check]: condition: Value error, rank: values must be lists",
        ),
        (
            lambda t: t.replace("customer.first_purchase", "customer.teleported"),
            "trigger.event: unknown event type 'customer.teleported'",
        ),
        (
            lambda t: t.replace("type: wait, days: 1", "type: wait"),
            "[step pause]: Value error, a wait needs a duration",
        ),
        (lambda t: t.replace("id: sample", "id: other"), "must match the file name"),
        (lambda t: t.replace("channels: [email]", "channels: [fax]"), "[step hello]: channels.0"),
    ],
)
def test_validator_reports_each_class_of_error(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    found = issues(tmp_path, mutate(GOOD))
    assert any(expected in i for i in found), found
    assert all(i.startswith(str(tmp_path)) for i in found)


def test_missing_templates_are_reported(tmp_path: Path) -> None:
    class Catalog:
        def parts_missing(self, program: str, template: str, channel: str) -> list[str]:
            return ["email.subject"] if template == "hello" else []

        def default_locale_problem(self, program: str, template: str) -> str | None:
            return None

    with pytest.raises(ProgramError) as info:
        load_program(write(tmp_path, GOOD), templates=Catalog())
    assert [str(i) for i in info.value.issues] == [
        f"{tmp_path}/sample.yaml [step hello]: template 'hello' has no email.subject for email"
    ]


def test_a_template_without_the_default_locale_folder_is_refused(tmp_path: Path) -> None:
    # given the step's template written in English only, in a shop whose default is ja
    folder = tmp_path / "templates" / "sample" / "hello" / "en"
    folder.mkdir(parents=True)
    for part in ("subject", "html", "txt"):
        (folder / f"email.{part}.j2").write_text("Hello")
    path = write(tmp_path, sample_program())
    # then a ja customer (and every locale but en) would fail at send: refused, once a step
    with pytest.raises(ProgramError) as info:
        load_program(path, templates=Renderer(tmp_path / "templates"))
    assert [str(i) for i in info.value.issues] == [
        f"{path} [step hello]: template 'hello' needs the default locale 'ja' (has en)"
    ]
    # and with en as the default locale it loads
    assert load_program(path, templates=Renderer(tmp_path / "templates", default_locale="en"))


def test_step_types_are_a_discriminated_union() -> None:
    schema = Program.model_json_schema()
    step = schema["properties"]["steps"]["items"]
    assert step["discriminator"]["propertyName"] == "type"
    assert set(step["discriminator"]["mapping"]) == {"send", "wait", "branch", "split", "exit"}


def test_unknown_segment_names_are_reported(tmp_path: Path) -> None:
    import shutil

    import yaml

    load = load_programs

    shutil.copy(ROOT / "programs" / "champions-care.yaml", tmp_path / "champions-care.yaml")
    path = tmp_path / "champions-care.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["audience"] = {"$or": [{"segments": ["gold-at-risk", "gold-at-rsik"]}, {"rank": ["Gold"]}]}
    path.write_text(yaml.safe_dump(raw))
    _, issues = load(tmp_path, segment_names=["gold-at-risk", "champions"])
    assert [str(i) for i in issues] == [
        f"{path}: segments: no segment 'gold-at-rsik' (champions, gold-at-risk)"
    ]
    # without segment names (no segments/ folder known) references are not checked
    assert load(tmp_path)[1] == []


def test_topics_must_be_declared_in_the_configuration(tmp_path: Path) -> None:
    text = GOOD.replace("id: sample\n", "id: sample\ntopic: coupons\n", 1).replace(
        "template: bye,", "template: bye, topic: offers,", 1
    )
    found = issues(tmp_path, text)
    assert any(
        "topic: unknown topic 'coupons' (declared: promotions, loyalty, " in i for i in found
    )
    assert any("[step bye]" in i and "unknown topic 'offers'" in i for i in found)
    good = GOOD.replace("id: sample\n", "id: sample\ntopic: newsletter\n", 1).replace(
        "template: bye,", "template: bye, topic: loyalty,", 1
    )
    program = load_program(write(tmp_path, good))
    send = program.step("bye")
    assert program.topic == "newsletter" and program.topic_of(send, "promotions") == "loyalty"  # type: ignore[arg-type]
    # a file that names no topic: the configuration's default topic
    plain = load_program(write(tmp_path, GOOD))
    assert plain.topic_of(plain.step("bye"), "promotions") == "promotions"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        # YAML text, a boolean and a whole float: pydantic's lax int read them as 1, 1, 1
        ("type: wait, days: '1'", "days"),
        ("type: wait, days: true", "days"),
        ("type: wait, days: 1.0", "days"),
        ("type: wait, days: ' 1'", "days"),
    ],
)
def test_a_number_in_a_program_is_a_number_not_text_or_a_boolean(
    tmp_path: Path, text: str, field: str
) -> None:
    found = issues(tmp_path, GOOD.replace("type: wait, days: 1", text))
    assert any("[step pause]" in i and field in i for i in found), found


def test_a_programs_holdout_is_a_whole_number(tmp_path: Path) -> None:
    for value in ("'10'", "true", "10.0"):
        text = GOOD.replace("name: Sample\n", f"name: Sample\nholdout_percent: {value}\n")
        found = issues(tmp_path, text)
        assert any("holdout_percent" in i for i in found), (value, found)
    loaded = load_program(
        write(tmp_path, GOOD.replace("name: Sample\n", "name: Sample\nholdout_percent: 10\n"))
    )
    assert loaded.holdout_percent == 10


def test_a_send_step_giving_channel_and_channels_is_refused_not_one_kept(tmp_path: Path) -> None:
    # `channel: push` is `channels: [push]`; both given was read as the first alone (the
    # step's `channels` list dropped without a word): refused, naming the step
    both = sample_program(
        "{id: bye, type: send, channel: push, channels: [email, line], template: bye, next: done}",
        "{id: done, type: exit}",
    )
    found = issues(tmp_path, both)
    assert any("give channel or channels, not both" in i for i in found), found
    # one or the other is read as before
    assert load_program(write(tmp_path, GOOD)).name
