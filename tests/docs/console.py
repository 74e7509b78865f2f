"""Run the shell blocks of the docs as a reader would type them, and compare what they print.

Why: a command in a document is a promise that it works. Copied into a test it drifts from
the document; read from the document, a change that breaks it fails the test.

**The marker.** Every fenced shell block (```` ```console ````, ```` ```sh ````, ```` ```bash
````, ```` ```shell ````) of a checked document is preceded, on the line before its fence (blank
lines between are allowed), by an HTML comment that says whether a test runs it:

    <!-- console: kube -->                      run, in the environment a test calls `kube`
    <!-- console: kube; output: columns -->     run; of the output, compare the header and the
                                                first column only (a listing that changes while
                                                it runs: progress, counts)
    <!-- console: kube; output: unordered -->   run; every line shown must be printed, in any
                                                order (Events of the same second)
    <!-- console: not run: REASON -->           not run, and REASON says why (and what checks
                                                it instead)
    <!-- console: not run: same as DOC "TITLE", REASON -->
                                                a copy of commands run elsewhere: each of its
                                                commands must be one of the blocks under the
                                                heading TITLE of DOC (a path from the
                                                repository's root)

GitHub does not render the comment. The environment is a name the tests agree on (``kube``:
see ``tests/docs/conftest.py``); the runner does not know what it means. A test picks the
blocks of a section (:func:`section`, by its heading) and runs them in the environment it has
set up (:func:`run_block`). ``tests/docs/test_markers.py`` fails on a shell block without a
marker, and on a block marked to run in a section no test runs: to run a new section, mark its
blocks, add its heading to the ``SECTIONS`` of the test module that runs it, and call
``reader.run(doc, heading)`` there.

**The block.** When a line starts with ``$ `` the block is a transcript: each ``$ `` line is a
command (a trailing ``\\`` continues it on the next line), and the lines up to the next one are
what it prints, stdout and stderr together. Otherwise the block is a script, run as a whole
(loops and pipes may span lines), its output not shown. Each runs with ``bash -e -o
pipefail`` and must exit 0.

**The output.** The document's lines and the command's are compared after making both
comparable: runs of spaces count as one (kubectl pads columns to the widest cell), and what
differs on every run, an age (``10s``, ``3m2s``) or a timestamp (``2026-11-30T01:38:45Z``),
stands for any such value. A line ``...`` in the document stands for any number of lines.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELLS = {"console", "sh", "bash", "shell"}
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*console:\s*(?P<text>.*?)\s*-->\s*$")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$")
NOT_RUN = "not run:"
SAME_AS = re.compile(r'same as (?P<doc>\S+) "(?P<title>[^"]+)"')
ELISION = "..."
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b")
AGE = re.compile(r"(?<!\S)(?:\d+(?:ms|[smhd]))+(?!\S)")


@dataclass(frozen=True)
class Command:
    """One command of a block, continuations joined as the shell joins them."""

    text: str
    line: int
    #: What the document shows it prints; None in a script, which shows no output.
    expected: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Block:
    """A fenced shell block of a document, with its marker."""

    doc: Path
    line: int
    section: str
    language: str
    marker: str | None
    commands: tuple[Command, ...]

    @property
    def where(self) -> str:
        name = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc
        return f"{name}:{self.line} ({self.section})"

    @property
    def runs(self) -> bool:
        return self.marker is not None and not self.marker.startswith(NOT_RUN)

    @property
    def reason(self) -> str:
        """Why it is not run (empty for a block that runs or has no marker)."""
        if self.marker is None or self.runs:
            return ""
        return self.marker.removeprefix(NOT_RUN).strip()

    @property
    def env(self) -> str:
        """The environment a test runs it in (empty when not run)."""
        return self.settings[0] if self.runs else ""

    @property
    def options(self) -> dict[str, str]:
        """``key: value`` settings after the environment (``output: columns``)."""
        pairs = (part.partition(":") for part in self.settings[1:])
        return {key.strip(): value.strip() for key, _, value in pairs}

    @property
    def copy_of(self) -> tuple[Path, str] | None:
        """(document, heading) this block says it copies its commands from."""
        same = SAME_AS.match(self.reason)
        return (ROOT / same["doc"], same["title"]) if same else None

    @property
    def settings(self) -> list[str]:
        return [part.strip() for part in (self.marker or "").split(";")]


def blocks(doc: Path) -> list[Block]:
    """Every fenced shell block of a Markdown document, in order."""
    lines = doc.read_text().splitlines()
    found: list[Block] = []
    section = doc.name
    marker: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if fence is None:
            if heading := HEADING.match(line):
                section = heading["title"]
            if (mark := MARKER.match(line)) is not None:
                marker = mark["text"]
            elif line.strip():
                marker = None
            index += 1
            continue
        indent = fence["indent"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [text.removeprefix(indent) for text in lines[index + 1 : end]]
        if fence["lang"] in SHELLS:
            commands = parse(body, first_line=index + 2)
            found.append(Block(doc, index + 1, section, fence["lang"], marker, commands))
        marker = None
        index = end + 1
    return found


def parse(body: Sequence[str], first_line: int) -> tuple[Command, ...]:
    """A transcript's commands with their output, or a script as one command."""
    if not any(text.startswith("$ ") for text in body):
        return (Command("\n".join(body), first_line),)
    commands: list[Command] = []
    index = 0
    while index < len(body):
        if not body[index].startswith("$ "):
            index += 1  # text before the first prompt: not part of any command
            continue
        start = index
        text = body[index][2:]
        while text.endswith("\\") and index + 1 < len(body):
            index += 1
            text = text[:-1] + " " + body[index].strip()
        index += 1
        output: list[str] = []
        while index < len(body) and not body[index].startswith("$ "):
            output.append(body[index])
            index += 1
        while output and not output[-1].strip():
            output.pop()
        commands.append(Command(text, first_line + start, tuple(output)))
    return tuple(commands)


def commands(block: Block) -> list[list[str]]:
    """The block's commands as the shell splits them into words, comments and line
    continuations gone, to compare copies of commands however they are laid out."""
    words = []
    for command in block.commands:
        for line in command.text.replace("\\\n", " ").splitlines():
            if split := shlex.split(line, comments=True):
                words.append(split)
    return words


def section(doc: Path, title: str) -> list[Block]:
    """The shell blocks under the heading ``title`` (its subsections excluded)."""
    found = [block for block in blocks(doc) if block.section == title]
    assert found, f"{doc.name} has no shell block under a heading {title!r}"
    return found


# --- running ------------------------------------------------------------------------------------


@dataclass
class Shell:
    """Where and as whom the commands run: a working directory (the reader's), the
    environment (KUBECONFIG and the like), and what a test must run instead of some text of
    the document (a free port instead of a fixed one)."""

    cwd: Path
    env: Mapping[str, str]
    replace: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 180

    def run(self, command: Command) -> subprocess.CompletedProcess[str]:
        text = command.text
        for doc_text, ours in self.replace.items():
            text = text.replace(doc_text, ours)
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", text],
            cwd=self.cwd,
            env=dict(self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self.timeout,
        )


def run_block(shell: Shell, block: Block) -> list[str]:
    """Run every command of a block that a test runs; fail on the first that exits non-zero
    or prints other than the document says. Returns each command's output."""
    assert block.runs, f"{block.where} is not run: {block.reason}"
    outputs: list[str] = []
    for command in block.commands:
        result = shell.run(command)
        shown = f"{block.where}, line {command.line}: {command.text}"
        assert result.returncode == 0, f"{shown}\nexited {result.returncode}:\n{result.stdout}"
        if command.expected is not None:
            problem = compare(command.expected, result.stdout, block.options.get("output", ""))
            assert problem is None, f"{shown}\n{problem}"
        outputs.append(result.stdout)
    return outputs


def comparable(line: str) -> str:
    """A line with what differs on every run replaced, and runs of spaces made one."""
    line = TIMESTAMP.sub("<time>", " ".join(line.split()))
    return AGE.sub("<age>", line)


def compare(expected: Sequence[str], printed: str, mode: str = "") -> str | None:
    """Why ``printed`` is not what the document shows (None when it is)."""
    actual = [comparable(x) for x in printed.splitlines() if x.strip()]
    wanted = [comparable(x) for x in expected if x.strip()]
    if mode == "columns":
        ok = actual[:1] == wanted[:1] and first_column(actual[1:]) == first_column(wanted[1:])
    elif mode == "unordered":
        shown = Counter(line for line in wanted if line != ELISION)
        ok = not shown - Counter(actual) and (ELISION in wanted or shown == Counter(actual))
    elif mode:
        raise ValueError(f"unknown output mode {mode!r}")
    else:
        ok = matches(wanted, actual)
    if ok:
        return None
    return "the document shows:\n" + "\n".join(expected) + "\nbut it printed:\n" + printed


def first_column(rows: Sequence[str]) -> list[str]:
    return [row.split(" ", 1)[0] for row in rows]


def matches(wanted: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` is ``wanted``, where each ``...`` line stands for any lines."""
    chunks: list[list[str]] = [[]]
    for line in wanted:
        if line == ELISION:
            chunks.append([])
        else:
            chunks[-1].append(line)
    position = 0
    for number, chunk in enumerate(chunks):
        size = len(chunk)
        if number == 0:
            if list(actual[:size]) != chunk:
                return False
            position = size
            continue
        starts = [
            start
            for start in range(position, len(actual) - size + 1)
            if list(actual[start : start + size]) == chunk
        ]
        if not starts:
            return False
        # The last chunk ends the output; any other takes its first place.
        position = (starts[-1] if number == len(chunks) - 1 else starts[0]) + size
    return position == len(actual)
