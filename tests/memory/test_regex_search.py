"""Regex search: the prefilter never drops a match (oracle: Python ``re`` over every stored
passage), patterns that make backtracking engines hang return, filters and metadata."""

import re
import shutil
import sysconfig
from pathlib import Path

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.memory.regex import HAVE_RE2, requirement
from engram_sdk.memory.verify import scan

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py", "argparse.py"]
PATTERNS = [
    r"def \w+\(self",
    r"raise \w+Error\(",
    r"import (re|sys)\b",
    r"(JSONDecodeError|ValueError)\(",
    r"\bself\.\w+_\w+\b",
    r"[A-Z][a-z]+Error",
    r"colou?r",
    r"x{2,}",
    r"^\s*return None$",
    r"(?:foo|bar)?baz",
    r"\d+\.\d+",
    r"ab+c",
    r"Match(?:er|ing)",
    r"\w*wrap\w*",
]


@pytest.fixture(scope="module")
def mem(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / rel, root / rel)
    (root / "notes.md").write_text("Colour and color.\nabbbbc and ABC\nbaz foobaz\nxx yy\n")
    m = Memory.open(f"lmdb://{tmp_path_factory.mktemp('s') / 'm'}", durable=False)
    m.ingest(root, progress=False)
    yield m
    m.close()


@pytest.fixture(scope="module")
def passages(mem):
    return list(scan(mem.store, mem.scope_id("default"), fragments=True))


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("exact_case", [False, True])
def test_regex_matches_python_re_on_every_passage(mem, passages, pattern, exact_case):
    rx = re.compile(pattern, (0 if exact_case else re.IGNORECASE) | re.MULTILINE)
    expected = {p.pid for p in passages if rx.search(p.text)}
    hits = mem.search(pattern, k="all", regex=True, exact_case=exact_case)
    assert {h.passage_id for h in hits} == expected
    for h in hits[:20]:
        line = Path(h.source).read_text().splitlines()[h.line_start - 1]
        assert h.snippet == line.strip()[:200]


def test_prefilter_reads_literals_from_the_pattern():
    req = requirement(r"def \w+_grad\(")
    assert len(req.all_of) == 2 and not req.any_of  # "def " and "_grad("
    assert requirement(r"(numpy|torch) as").any_of
    assert requirement(r"\w+").empty
    assert requirement(r"(?:ab)?c").empty  # an optional group requires nothing


@pytest.mark.skipif(not HAVE_RE2, reason="google-re2 not installed")
def test_catastrophic_patterns_run_in_linear_time(mem):
    """(a+)+b on a long run of a's hangs a backtracking engine; RE2 answers. Not timed: the
    test would not finish with a backtracking matcher."""
    mem.add("a" * 1000 + "!", source="evil.txt", scope="evil")
    assert mem.search(r"(a+)+b", k="all", regex=True, scope="evil") == []
    assert len(mem.search(r"(a|aa)+!", k="all", regex=True, scope="evil")) == 1


def test_invalid_pattern_is_an_input_error(mem):
    with pytest.raises(InputError, match=r"regex '\(unclosed' is not valid"):
        mem.search("(unclosed", regex=True)


def test_filters_and_metadata_on_hits(tmp_path):
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as m:
        m.add("deploy on tuesday", source="ops/deploy.md", metadata={"team": "a", "n": 1})
        m.add("deploy on friday", source="dev/deploy.txt", metadata={"team": "b"})
        hits = m.search(r"deploy on \w+day", k="all", regex=True, metadata={"team": "a"})
        assert [(h.source, h.metadata) for h in hits] == [("ops/deploy.md", {"team": "a", "n": 1})]
        assert [h.source for h in m.search("deploy", k="all", path_glob="dev/*")] == [
            "dev/deploy.txt"
        ]
        assert [h.source for h in m.search("deploy", k="all", sources=["ops/deploy.md"])] == [
            "ops/deploy.md"
        ]
        assert m.search("deploy", k="all", path_glob="*.rst") == []


@pytest.mark.parametrize("pattern", [r"def \w+\(self", r"colou?r", r"x{2,}", r"\w*wrap\w*"])
def test_regex_one_per_source_lists_each_matching_source_at_its_first_passage(
    mem, passages, pattern
):
    """Oracle: Python ``re`` over every stored passage, lowest matching passage per source."""
    rx = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    first: dict[str, int] = {}
    for p in sorted(passages, key=lambda p: p.pid):
        if rx.search(p.text):
            first.setdefault(p.meta["source"], p.pid)
    hits = mem.search(pattern, k="all", regex=True, one_per_source=True)
    assert {h.source: h.passage_id for h in hits} == first
    assert len(hits) == len(first)
