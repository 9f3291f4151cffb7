"""``.gitignore`` rules matched in linear time, as git and ripgrep do.

A glob is compiled to a list of steps and matched by simulating every position of the
pattern at once (a bit set of live steps), so a path of n characters against a pattern of m
steps costs O(n·m) whatever the pattern: ``*a*a*a…*b`` against a long run of ``a`` cannot
backtrack. Backtracking regexes (what ``pathspec`` compiles to) take exponential time there.

A line that is not a valid pattern (a reversed range ``[z-a]``, an unclosed ``[``) is
skipped with a warning naming the file and line, as git skips it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

LITERAL, ANY, CLASS, STAR, DSTAR, OPT_FOLDERS = range(6)


class PatternError(ValueError):
    """A line of an ignore file is not a valid glob."""


@dataclass(frozen=True)
class Step:
    """One element of a compiled glob."""

    kind: int
    char: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False

    def takes(self, ch: str) -> bool:
        """Whether this step consumes ``ch`` and moves on (LITERAL, ANY, CLASS)."""
        if self.kind == LITERAL:
            return ch == self.char
        if ch == "/":
            return False
        if self.kind == ANY:
            return True
        inside = any(lo <= ch <= hi for lo, hi in self.ranges)
        return inside != self.negated


def _parse_class(glob: str, i: int) -> tuple[Step, int]:
    """A ``[...]`` class starting at ``glob[i] == '['``; returns the step and the next index."""
    j = i + 1
    negated = j < len(glob) and glob[j] in "!^"
    j += negated
    ranges: list[tuple[str, str]] = []
    first = True
    while j < len(glob) and (glob[j] != "]" or first):
        first = False
        lo = glob[j]
        if lo == "\\" and j + 1 < len(glob):
            j += 1
            lo = glob[j]
        hi = lo
        if j + 2 < len(glob) and glob[j + 1] == "-" and glob[j + 2] != "]":
            hi = glob[j + 2]
            if hi == "\\" and j + 3 < len(glob):
                j += 1
                hi = glob[j + 2]
            j += 2
            if hi < lo:
                raise PatternError(f"reversed range [{lo}-{hi}]")
        ranges.append((lo, hi))
        j += 1
    if j >= len(glob):
        raise PatternError("unclosed [")
    return Step(CLASS, ranges=tuple(ranges), negated=negated), j + 1


def compile_glob(glob: str) -> list[Step]:
    """Steps of a gitignore glob (``*``, ``?``, ``[...]``, ``**``, backslash escapes)."""
    steps: list[Step] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            run = len(glob[i:]) - len(glob[i:].lstrip("*"))
            at_start = i == 0 or glob[i - 1] == "/"
            at_end = i + run == len(glob) or glob[i + run] == "/"
            if run >= 2 and at_start and at_end:
                if i + run < len(glob):  # "**/": any number of whole folders, or none
                    steps += [Step(OPT_FOLDERS), Step(DSTAR), Step(LITERAL, "/")]
                    i += run + 1
                else:  # trailing "**": everything below
                    steps.append(Step(DSTAR))
                    i += run
                continue
            steps.append(Step(STAR))
            i += run
        elif ch == "?":
            steps.append(Step(ANY))
            i += 1
        elif ch == "[":
            step, i = _parse_class(glob, i)
            steps.append(step)
        elif ch == "\\":
            if i + 1 >= len(glob):
                raise PatternError("trailing backslash")
            steps.append(Step(LITERAL, glob[i + 1]))
            i += 2
        else:
            steps.append(Step(LITERAL, ch))
            i += 1
    return steps


def _closure(steps: list[Step], live: int) -> int:
    """Add the steps reachable without consuming a character (stars may match nothing)."""
    for pos, step in enumerate(steps):  # every such edge goes forward: one pass suffices
        if live >> pos & 1:
            if step.kind in (STAR, DSTAR):
                live |= 1 << (pos + 1)
            elif step.kind == OPT_FOLDERS:  # enter "**/" or jump past it
                live |= 1 << (pos + 1) | 1 << (pos + 3)
    return live


def glob_matches(steps: list[Step], text: str) -> bool:
    """Whether ``text`` matches the whole glob; O(len(text) · len(steps))."""
    live = _closure(steps, 1)
    for ch in text:
        nxt = 0
        for pos, step in enumerate(steps):
            if not live >> pos & 1:
                continue
            kind = step.kind
            if kind == DSTAR or (kind == STAR and ch != "/"):
                nxt |= 1 << pos
            elif kind in (LITERAL, ANY, CLASS) and step.takes(ch):
                nxt |= 1 << (pos + 1)
        live = _closure(steps, nxt)
        if not live:
            return False
    return bool(live >> len(steps) & 1)


def _step_regex(step: Step) -> str:
    if step.kind == LITERAL:
        return re.escape(step.char)
    if step.kind == ANY:
        return "[^/]"
    if step.kind == STAR:
        return "[^/]*"
    if step.kind == DSTAR:
        return ".*"
    body = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in step.ranges
    )
    return f"[^/{body}]" if step.negated else f"(?!/)[{body}]"


def fast_regex(steps: list[Step]) -> re.Pattern[str] | None:
    """A regex for globs with at most one star: backtracking is then linear too."""
    if sum(s.kind in (STAR, DSTAR) for s in steps) > 1:
        return None
    parts, i = [], 0
    while i < len(steps):
        if steps[i].kind == OPT_FOLDERS:
            parts.append("(?:.*/)?")
            i += 3
            continue
        parts.append(_step_regex(steps[i]))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Rule:
    """One line of an ignore file."""

    steps: list[Step]
    negated: bool
    dir_only: bool
    anchored: bool  # matched against the path from the ignore file's folder, else the name
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Whether the rule applies to ``rel`` (relative to the ignore file's folder)."""
        if self.dir_only and not is_dir:
            return False
        target = rel if self.anchored else rel.rsplit("/", 1)[-1]
        if self.regex is not None:
            return self.regex.fullmatch(target) is not None
        return glob_matches(self.steps, target)


def parse_line(line: str) -> Rule | None:
    """A rule, or None for blank lines and comments; raises :class:`PatternError`."""
    line = line.rstrip("\n\r")
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "  # "\ " keeps one trailing space
    line = stripped
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    line = line[:-1] if dir_only else line
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    steps = compile_glob(line)
    return Rule(steps, negated, dir_only, anchored, fast_regex(steps))


class IgnoreFile:
    """The rules of one folder's ignore files, in order (the last match decides)."""

    def __init__(self, folder: Path, rules: list[Rule]) -> None:
        self.folder = folder
        self.rules = rules

    def decide(self, rel: str, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a ``!`` rule; None: no rule applies."""
        for rule in reversed(self.rules):
            if rule.matches(rel, is_dir):
                return not rule.negated
        return None


def load_rules(files: list[tuple[str, str]], warn: list[str]) -> list[Rule]:
    """Rules of ``(name, text)`` ignore files; invalid lines are skipped with a warning."""
    rules: list[Rule] = []
    for name, text in files:
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                rule = parse_line(line)
            except PatternError as exc:
                warn.append(f"{name}:{number}: invalid ignore pattern {line!r} ({exc}); skipped")
                continue
            if rule is not None:
                rules.append(rule)
    return rules
