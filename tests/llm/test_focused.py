"""Which recalled lines the focus format keeps, scored without a model."""

from __future__ import annotations

from engram_sdk.llm.focused import DEFINITION_BONUS, PHRASE_BONUS, definition_pattern, scored_lines
from engram_sdk.memory.models import Hit, Passage


def _recalled(source: str, text: str, start: int = 1) -> tuple[Hit, Passage]:
    lines = text.count("\n") + 1
    hit = Hit(
        source=source,
        line_start=start,
        line_end=start + lines - 1,
        score=1.0,
        snippet="",
        passage_id=1,
        phrase_match=False,
        scope="default",
        metadata={},
    )
    passage = Passage(
        pid=1,
        source=source,
        scope="default",
        line_start=start,
        line_end=start + lines - 1,
        byte_start=0,
        byte_end=len(text.encode()),
        text=text,
    )
    return hit, passage


def test_definition_pattern_matches_declarations_and_assignments_only() -> None:
    defines = definition_pattern(["NUMBER_RE", "py_scanstring"])
    assert defines is not None
    for line in (
        "NUMBER_RE = re.compile(",
        "def py_scanstring(s, end):",
        "async def py_scanstring():",
        "NUMBER_RE: Pattern = x",
    ):
        assert defines.match(line), line
    for line in (
        "NUMBER_RE == other",
        "match = NUMBER_RE.match",
        "x = py_scanstring",
        "def py_scanstring_fast():",
        "# NUMBER_RE = old",
    ):
        assert not defines.match(line), line
    assert definition_pattern([]) is None


def test_lines_score_terms_then_phrase_then_definition() -> None:
    text = "from .scanner import make_scanner\nmake_scanner = c_make_scanner or py_make_scanner\n\ndef py_make_scanner(context):"
    got = scored_lines(
        [_recalled("scanner.py", text, start=10)],
        "Which file defines py_make_scanner?",
        "py_make_scanner",
        ["py_make_scanner"],
    )
    by_line = {f.line: f.score for f in got}
    # line 10 holds the terms "make" and "scanner" only; 11 also the phrase; 13 defines it
    assert by_line == {10: 2, 11: 2 + PHRASE_BONUS, 13: 2 + PHRASE_BONUS + DEFINITION_BONUS}
    assert 12 not in by_line  # the blank line


def test_scoring_skips_no_line_that_the_full_scoring_keeps() -> None:
    """The substring prefilter and the compile-free definition check against the plain
    definition: every line scored by terms, phrase and ``definition_pattern``."""
    import random

    from engram_sdk.llm.terms import query_terms

    rng = random.Random(3)
    words = [
        "make_scanner",
        "Scanner",
        "py_make_scanner",
        "context",
        "def",
        "class",
        "x",
        "=",
        "==",
        ":",
        "(",
        ")",
        "async",
        "export",
        "type",
        "NUMBER_RE",
        "Ünïcode",
        "İstanbul",
        "the",
        "  ",
        "\t",
        "for",
        "scan",
        "make",
        "_scanner",
    ]
    names = ["py_make_scanner", "NUMBER_RE", "make_scanner"]
    query = "Which file defines py_make_scanner and NUMBER_RE for the Ünïcode scan?"
    phrase = "make_scanner"
    pattern = definition_pattern(names)
    assert pattern is not None
    for _ in range(40):
        lines = [
            "".join(
                rng.choice(words) + rng.choice(["", " ", "  "]) for _ in range(rng.randint(0, 7))
            )
            for _ in range(30)
        ]
        text = "\n".join(lines)
        got = {
            f.line: f.score for f in scored_lines([_recalled("f.py", text)], query, phrase, names)
        }
        want = {}
        for i, raw in enumerate(text.splitlines()):
            line = raw.strip()
            if not line:
                continue
            score = len(query_terms(query) & query_terms(line))
            score += PHRASE_BONUS if phrase in line.lower() else 0
            score += DEFINITION_BONUS if pattern.match(line) else 0
            if score:
                want[1 + i] = score
        assert got == want
