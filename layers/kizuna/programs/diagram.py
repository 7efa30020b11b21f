"""A program's journey as a Mermaid flowchart (``kizuna programs show NAME``)."""

from __future__ import annotations

from kizuna.programs.loader import next_of
from kizuna.programs.model import BranchStep, ExitStep, Program, SendStep, SplitStep, WaitStep


def label(step: SendStep | WaitStep | BranchStep | SplitStep | ExitStep) -> str:
    if isinstance(step, SendStep):
        via = " → ".join(step.channels)
        return f"send {step.template}<br/>{via}"
    if isinstance(step, WaitStep):
        parts = [
            f"{n}{u}" for n, u in ((step.days, "d"), (step.hours, "h"), (step.minutes, "m")) if n
        ]
        text = "wait " + " ".join(parts) if parts else "wait"
        if step.until_local_time:
            text += f" until {step.until_local_time} local"
        return text
    if isinstance(step, BranchStep):
        if step.engagement is not None:  # "opened coupon within 48 h?"
            e = step.engagement
            return f"{e.event.value} {e.step} within {e.within_hours} h?"
        return "branch"
    if isinstance(step, SplitStep):
        return "split " + " / ".join(f"{a.name} {a.weight}%" for a in step.arms)
    return "exit"


def mermaid(program: Program) -> str:
    lines = ["flowchart TD", f'  start(["{program.trigger.event}"])']
    shapes = {BranchStep: ("{", "}"), SplitStep: ("{{", "}}"), ExitStep: ("([", "])")}
    for step in program.steps:
        left, right = shapes.get(type(step), ("[", "]"))
        lines.append(f'  {step.id}{left}"{label(step)}"{right}')
    lines.append(f"  start --> {program.steps[0].id}")
    if program.holdout_percent:
        lines.append(f'  start -. "holdout {program.holdout_percent}%" .-> holdout(["no message"])')
    for i, step in enumerate(program.steps):
        if isinstance(step, BranchStep):
            if step.then:
                lines.append(f"  {step.id} -- yes --> {step.then}")
            if step.otherwise:
                lines.append(f"  {step.id} -- no --> {step.otherwise}")
        elif isinstance(step, SplitStep):
            lines.extend(f"  {step.id} -- {a.name} --> {a.next}" for a in step.arms if a.next)
        else:
            lines.extend(f"  {step.id} --> {target}" for target in next_of(program, i))
    if program.goal and program.goal.exit_journey:
        lines.append(
            f'  goal(["goal: {program.goal.event} within {program.goal.within_days}d → exit"])'
        )
    return "\n".join(lines) + "\n"
