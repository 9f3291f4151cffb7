"""Every ``engram bench`` table agrees with itself: each printed ratio follows from the
figures printed beside it.

The checker is generic: it reads every box table a benchmark prints and, for each ratio
column (cells like ``1.23x``), looks for what explains it in every row: a numeric column
divided by (or dividing) the baseline row's value (the row printed as ``1.00x``), or one
numeric column divided by another in the same row. A ratio that nothing printed explains
is a contradiction. Each benchmark runs in its quick mode (or the smallest options it has).
A benchmark whose table is too wide for a terminal (its cells wrap) is checked on the
Markdown copy of its tables that it writes with ``--markdown``.
"""

import re
from pathlib import Path

import pytest

from tests.conftest import CliRunner

QUICK_ARGS = {
    "hashing": ["--tokens", "65536", "--repeats", "2"],
    "stores": ["--quick"],
    "evals": ["--lengths", "4096,8192", "--repeat", "1"],
    # --turns 1200: the chat-turns table gets two rows (1,000 and 1,200 turns)
    "memory": ["--quick", "--no-cli", "--turns", "1200"],
    "prefetch": ["--table-rows", "20011", "--steps", "2", "--batch", "1", "--seq", "32"],
    "model": ["--steps", "2", "--batch", "1", "--seq", "32", "--device", "cpu"],
    "serve": ["--clients", "1,2", "--requests", "3", "--memory-mb", "0.2"],
}
KNOWN_CONTRADICTIONS: dict[str, str] = {}  # benchmark name → why its table disagrees today
MARKDOWN = {"memory", "serve"}  # checked on the tables they write with --markdown
# Ratio columns the benchmark prints without their numerator or denominator: nothing printed
# can confirm or contradict them. benchmark → {column: what the ratio is}.
UNPRINTED_QUOTIENTS = {"memory": {"index/corpus": "index bytes / corpus bytes"}}
RATIO = re.compile(r"^\d+(\.\d+)?x$")


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(headers, rows of cells) of every rich box table in ``text``."""
    tables, header, rows = [], None, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("┃"):
            header = [c.strip() for c in stripped.strip("┃").split("┃")]
        elif stripped.startswith("│") and header is not None:
            rows.append([c.strip() for c in stripped.strip("│").split("│")])
        elif stripped.startswith("└") and header is not None:
            tables.append((header, rows))
            header, rows = None, []
    return tables


def parse_markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(headers, rows of cells) of every Markdown pipe table in ``text``."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1])):
            continue
        header = [c.strip() for c in line.strip().strip("|").split("|")]
        rows = []
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            rows.append([c.strip() for c in row.strip().strip("|").split("|")])
        tables.append((header, rows))
    return tables


Figure = tuple[float, float]  # a printed number and its rounding error (half a last digit)


def number(cell: str) -> Figure | None:
    """The value of a printed number and how far rounding may have moved it."""
    text = cell.replace(",", "").rstrip("%x")
    try:
        value = float(text)
    except ValueError:
        return None
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return value, 0.5 * 10 ** (int(exponent or 0) - decimals)


def quotient(a: Figure | None, b: Figure | None) -> Figure | None:
    """``a / b`` and its worst-case error from the rounding of both."""
    if a is None or b is None or b[0] == 0 or a[0] == 0:
        return None
    q = a[0] / b[0]
    return q, abs(q) * (a[1] / abs(a[0]) + b[1] / abs(b[0]))


def explained(printed: str, figure: Figure | None) -> bool:
    """``printed`` (like ``2.09x``) is ``figure`` as printed, within both roundings."""
    ratio = number(printed)
    if figure is None or ratio is None:
        return False
    return abs(ratio[0] - figure[0]) <= ratio[1] + figure[1] + 1e-12


def ratio_sources(header: list[str], rows: list[list[str]], ratio_col: int) -> list[str]:
    """Names of what explains the ratio column in every row that prints a ratio."""
    others = [i for i in range(len(header)) if i != ratio_col]
    ratio_rows = [r for r in rows if RATIO.match(r[ratio_col])]
    printed = [r[ratio_col] for r in ratio_rows]
    baseline = next((r for r in ratio_rows if float(r[ratio_col][:-1]) == 1.0), None)
    found = []
    for c in others if baseline is not None else []:
        base = number(baseline[c])
        if all(map(explained, printed, [quotient(number(r[c]), base) for r in ratio_rows])):
            found.append(f"{header[c]} / baseline")
        if all(map(explained, printed, [quotient(base, number(r[c])) for r in ratio_rows])):
            found.append(f"baseline / {header[c]}")
    for a in others:
        for b in others:
            quotients = [quotient(number(r[a]), number(r[b])) for r in ratio_rows]
            if a != b and all(map(explained, printed, quotients)):
                found.append(f"{header[a]} / {header[b]}")
    return found


def contradictions(
    header: list[str], rows: list[list[str]], unprinted: frozenset[str] = frozenset()
) -> list[str]:
    """Ratio columns that no printed figure explains, with their rows.

    ``unprinted`` names ratio columns whose operands the table does not print.
    """
    wrong = []
    for col, name in enumerate(header):
        ratio_rows = [r for r in rows if RATIO.match(r[col])]
        if len(ratio_rows) < 2 or name in unprinted or ratio_sources(header, rows, col):
            continue
        printed = ", ".join(f"{r[0]} {r[col]}" for r in ratio_rows)
        wrong.append(f"{name!r} follows from no printed column: {printed}")
    return wrong


def test_checker_finds_a_contradiction_and_accepts_rounding() -> None:
    table = """
┏━━━━━━━┳━━━━━━━━━━┳━━━━━━━━┓
┃ what  ┃ tokens/s ┃ vs one ┃
┡━━━━━━━╇━━━━━━━━━━╇━━━━━━━━┩
│ one   │ 1.27e+06 │  1.00x │
│ two   │ 1.32e+05 │  0.10x │
│ three │  2.6e+06 │  2.50x │
└───────┴──────────┴────────┘
"""
    ((header, rows),) = parse_tables(table)
    assert header == ["what", "tokens/s", "vs one"] and len(rows) == 3
    assert ratio_sources(header, rows, 2) == []
    assert contradictions(header, rows) == [
        "'vs one' follows from no printed column: one 1.00x, two 0.10x, three 2.50x"
    ]
    rows[2][2] = "2.05x"
    assert ratio_sources(header, rows, 2) == ["tokens/s / baseline"]
    assert contradictions(header, rows) == []


def test_markdown_tables_are_read_and_unprinted_quotients_named() -> None:
    text = """### sizes

| system | MB/s | index/corpus | p50 ms | vs first |
|---|---|---|---|---|
| one | 5.5 | 1.54x | 2.00 | 1.00x |
| two | - | 3.07x | 3.00 | 1.50x |

- a note
| not | a table |
"""
    ((header, rows),) = parse_markdown_tables(text)
    assert header == ["system", "MB/s", "index/corpus", "p50 ms", "vs first"]
    assert rows == [
        ["one", "5.5", "1.54x", "2.00", "1.00x"],
        ["two", "-", "3.07x", "3.00", "1.50x"],
    ]
    assert ratio_sources(header, rows, 4) == ["p50 ms / baseline"]
    assert contradictions(header, rows) == [
        "'index/corpus' follows from no printed column: one 1.54x, two 3.07x"
    ]
    assert contradictions(header, rows, frozenset({"index/corpus"})) == []


SLOW = {"model", "stores", "memory"}  # over ~15 s on two busy cores


def bench_case(name: str) -> object:
    marks = [pytest.mark.slow] if name in SLOW else []
    if name in KNOWN_CONTRADICTIONS:
        marks.append(pytest.mark.xfail(strict=False, reason=KNOWN_CONTRADICTIONS[name]))
    return pytest.param(name, marks=marks, id=name)


def installed() -> list[str]:
    from engram_sdk.cli.bench_cmd import installed_benchmarks

    return sorted(installed_benchmarks())


@pytest.mark.parametrize("name", [bench_case(n) for n in installed()])
def test_printed_ratios_follow_from_printed_rates(
    engram_cli: CliRunner, name: str, tmp_path: Path
) -> None:
    markdown = tmp_path / f"{name}.md"
    extra = ["--markdown", markdown] if name in MARKDOWN else []
    out = engram_cli("bench", name, *QUICK_ARGS[name], *extra, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    text = markdown.read_text() if extra else out.stdout
    tables = parse_markdown_tables(text) if extra else parse_tables(text)
    assert tables, text
    unprinted = frozenset(UNPRINTED_QUOTIENTS.get(name, {}))
    headers = {column for header, _ in tables for column in header}
    assert unprinted <= headers, "an exempted ratio column is gone: update UNPRINTED_QUOTIENTS"
    wrong = [w for header, rows in tables for w in contradictions(header, rows, unprinted)]
    assert wrong == [], text


def test_every_benchmark_has_a_quick_case() -> None:
    assert set(installed()) <= set(QUICK_ARGS)
