"""The console's shared figure cells (``_figures.html``), as the HTML report prints them."""

from __future__ import annotations

from kizuna.analytics.stats import lift
from kizuna.api.console import environment


def cells(treated: tuple[int, int], held: tuple[int, int]) -> str:
    template = environment().from_string(
        '{% from "_figures.html" import lift_cells %}{{ lift_cells(figures) }}'
    )
    return template.render(figures=lift(*treated, *held))


def test_a_tiny_p_value_reads_below_a_thousandth_as_in_the_report() -> None:
    # the console printed 0.000 where the report says p < 0.001
    shown = cells((400, 1000), (100, 1000))
    assert "&lt; 0.001" in shown and "0.000<" not in shown
    assert ">1.000<" in cells((10, 100), (10, 100))  # no difference at all: p = 1
