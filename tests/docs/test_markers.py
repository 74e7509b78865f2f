"""Every shell block of the documents a reader follows says whether a test runs it, and every
block marked to run is run: a new command in these documents cannot go unchecked by accident
(tests/docs/console.py describes the markers). And every test a document names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart.test_runbooks import anchors
from tests.docs import test_chart_readme_commands, test_readme_commands
from tests.docs.console import ROOT, Block, blocks, commands, section

#: The documents whose every shell block carries a marker.
CHECKED = [
    ROOT / "README.md",
    ROOT / "charts" / "bulk-termination-operator" / "README.md",
    ROOT / "docs" / "limits.md",
    ROOT / "docs" / "helm.md",
]
#: The sections the tests of tests/docs run, by document.
RUN: dict[Path, set[str]] = {}
for module in (test_readme_commands, test_chart_readme_commands):
    for doc, titles in module.SECTIONS.items():
        RUN.setdefault(doc, set()).update(titles)
ENVIRONMENTS = {"kube"}
OUTPUT_MODES = {"", "columns", "unordered"}
#: A test file, optionally with a test in it, as the documents name them.
TEST_REFERENCE = re.compile(r"(tests/[\w/*.-]+\.py)(?:::(\w+))?")


def all_blocks() -> list[Block]:
    return [block for doc in CHECKED for block in blocks(doc)]


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.where)
def test_each_shell_block_says_whether_a_test_runs_it(block: Block) -> None:
    assert block.marker is not None, (
        f"{block.where}: no <!-- console: ... --> marker before the block "
        "(tests/docs/console.py says which)"
    )
    if block.runs:
        assert block.env in ENVIRONMENTS, block.where
        assert set(block.options) <= {"output"}, block.where
        assert block.options.get("output", "") in OUTPUT_MODES, block.where
        assert block.section in RUN.get(block.doc, set()), (
            f"{block.where} is marked to run, but no test of tests/docs runs its section"
        )
    else:
        assert block.reason, f"{block.where}: say why it is not run"


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.copy_of], ids=lambda b: b.where)
def test_a_copy_of_commands_run_elsewhere_is_a_true_copy(block: Block) -> None:
    """A block not run because it repeats commands that are run elsewhere must repeat them
    exactly: else the copy a reader follows is the one nothing checks."""
    assert block.copy_of is not None
    doc, title = block.copy_of
    original = [c for b in section(doc, title) for c in commands(b)]
    assert [c for c in commands(block) if c not in original] == [], block.where


def test_every_section_the_tests_run_has_blocks_marked_to_run() -> None:
    for doc, titles in RUN.items():
        marked = {block.section for block in blocks(doc) if block.runs}
        assert titles <= marked, (doc.name, sorted(titles - marked))


def documents() -> list[Path]:
    return [*CHECKED[:2], *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_a_document_names_exists(doc: Path) -> None:
    """A document that says a test checks something must not name one that is gone."""
    missing = []
    for path, name in TEST_REFERENCE.findall(doc.read_text()):
        files = sorted(ROOT.glob(path))
        if not files:
            missing.append(path)
        elif name and not any(re.search(rf"def {name}\b", f.read_text()) for f in files):
            missing.append(f"{path}::{name}")
    assert missing == []


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_document_leads_somewhere(doc: Path) -> None:
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target}#{anchor}")
    assert broken == []
