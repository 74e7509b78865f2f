"""docs/simulator.md's table of `bulkterm simulator` options is the command's: every option
it has, none it lacks, and the defaults it uses (the words `none`, `off` and `random` for an
option that is unset by default)."""

from __future__ import annotations

import re

import click

from bulkterm.simulator.command import simulator_command
from tests.docs.test_limits_table import table
from tests.plugins.helm import ROOT

UNSET = {"none", "off", "random"}


def options() -> dict[str, click.Parameter]:
    found = {}
    for param in simulator_command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--") and opt != "--help":
                found[opt] = param
    return found


def default_of(param: click.Parameter) -> str:
    default = param.default
    if default is None or default is False or not isinstance(default, str | int | float):
        return "unset"
    numeric = isinstance(default, int | float) or re.fullmatch(r"\d+(\.\d+)?", str(default))
    return f"{float(default):g}" if numeric else str(default)


def test_the_simulator_doc_lists_every_option_with_its_default() -> None:
    rows = table(ROOT.joinpath("docs", "simulator.md").read_text(), "| option | default |")
    served = options()
    documented: dict[str, str] = {}
    for row in rows:
        names = re.findall(r"`(--[a-z-]+)", row["option"])
        defaults = [d.strip(" `") for d in row["default"].split(",")]
        if len(defaults) != len(names):
            defaults = defaults[:1] * len(names)
        for name, default in zip(names, defaults, strict=True):
            word = default.split()[0]
            documented[name] = "unset" if word in UNSET else default
            if re.fullmatch(r"\d+(\.\d+)?", default):
                documented[name] = f"{float(default):g}"
    assert sorted(documented) == sorted(served)
    wrong = {name: (said, default_of(served[name])) for name, said in documented.items()
             if said != default_of(served[name])}  # fmt: skip
    assert wrong == {}
