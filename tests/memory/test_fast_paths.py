"""The fast paths of ingest and search give what their plain restatements give.

Each oracle below is the rule written the obvious way (a loop per line, a set per passage,
a validated pydantic model), independent of the vectorised code it checks.
"""

import functools
import random
import re
import sysconfig
import unicodedata
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.memory.chunking import Chunk, chunk_text
from engram_sdk.memory.fold import collapse_spaces, fold, fold_fast, index_bytes
from engram_sdk.memory.models import Hit, Passage, decode_passage, encode_passage_records
from engram_sdk.memory.trigrams import passage_postings
from engram_sdk.memory.verify import trusted_hit

TOP = re.compile(
    r"^(def |class |async def |fn |pub |func |function |struct |enum |impl |interface |"
    r"export |const |static |int |void |template|#define|package |module |@)"
)


def _cut_lines(text: str, max_chars: int) -> list[tuple[str, int]]:
    out = []
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        while len(line) > max_chars:
            cut = max(line.rfind(". ", 0, max_chars), line.rfind("\n", 0, max_chars))
            if cut < max_chars // 2:
                cut = line.rfind(" ", 0, max_chars)
            cut = cut + 1 if cut >= max_chars // 4 else max_chars
            out.append((line[:cut], n))
            line = line[cut:]
        out.append((line, n))
    return out


def chunk_oracle(text: str, code: bool, max_lines: int = 60, max_chars: int | None = None):
    """The chunking rules, one line at a time."""
    max_chars = max_chars or (3000 if code else 1200)
    pieces = _cut_lines(text, max_chars)
    min_lines = 8 if code else 1
    chunks, start, size, start_byte = [], 0, 0, 0
    for i in range(len(pieces) + 1):
        if i < len(pieces):
            piece, n_here = pieces[i][0], i - start
            top = code and TOP.match(piece) and n_here >= min_lines
            blank = not piece.strip() and n_here >= min_lines
            blank = blank and (not code or n_here >= max_lines // 3)
            split = top or blank or n_here >= max_lines or size + len(piece) > max_chars
        if i == len(pieces) or split:
            if i > start:
                body = "".join(p for p, _ in pieces[start:i])
                nbytes = len(body.encode("utf-8", "surrogatepass"))
                if body.strip():
                    first, last = pieces[start][1], pieces[i - 1][1]
                    chunks.append(Chunk(body, first, last, start_byte, start_byte + nbytes))
                start_byte += nbytes
            start, size = i, 0
        if i < len(pieces):
            size += len(pieces[i][0])
    return chunks


PARTS = ["x = 1", " ", "\n", "\n\n", "def f():\n", "class K:\n", "\r\n", "\r", "é", "\x0c"]
PARTS += ["y" * 45, ". ", "   \n", "\u2028", "@dec\n", "word"]


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.sampled_from(PARTS), max_size=250),
    st.booleans(),
    st.sampled_from([(60, None), (5, 40), (3, 17)]),
)
def test_chunks_equal_the_line_by_line_rules(parts, code, limits):
    text = "".join(parts)
    assert chunk_text(text, code, *limits) == chunk_oracle(text, code, *limits)


def test_chunks_of_real_source_equal_the_line_by_line_rules():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    for path in random.Random(0).sample(files, 6):
        text = path.read_text(errors="replace")
        assert chunk_text(text, True) == chunk_oracle(text, True), path
        assert chunk_text(text, False) == chunk_oracle(text, False), path


def test_postings_over_many_groups_equal_per_passage_sets():
    """More passages than one sort group holds (256), ids with gaps, some non-ASCII."""
    rng = random.Random(1)
    words = ["alpha", "Beta", "gamma\n", "  delta", "épée", "ΣΦ", "x", "\t\t"]
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(700)]
    pids = np.cumsum(np.array([rng.randint(1, 9) for _ in texts], np.uint32)).astype(np.uint32)
    keys = passage_postings([index_bytes(t) for t in texts], pids)
    expected = set()
    for pid, t in zip(pids.tolist(), texts, strict=True):
        b = fold(t).encode("utf-8", "surrogatepass") + b"\x00\x00"
        expected |= {(int.from_bytes(b[i : i + 3], "big") << 32) | pid for i in range(len(b) - 2)}
    assert keys.tolist() == sorted(expected)


def test_trusted_hits_equal_validated_hits():
    fields = {
        "source": "a/b[v2].py",
        "line_start": 3,
        "line_end": 3,
        "score": 1.25,
        "snippet": "x = [/b]",
        "passage_id": 7,
        "phrase_match": True,
        "scope": "default",
        "metadata": {"k": [1, 2]},
    }
    fast, checked = trusted_hit(dict(fields)), Hit(**fields)
    assert fast == checked
    assert fast.model_dump() == checked.model_dump() == fields
    assert fast.model_dump_json() == checked.model_dump_json()
    assert fast.model_copy(update={"score": 2.0}).score == 2.0


def test_passage_records_decode_to_the_models_they_stand_for():
    chunks = [Chunk("def f():\n    return 'é'\n", 4, 5, 10, 35), Chunk("x = 1\n", 9, 9, 40, 46)]
    sources = ['src/ü "q".py', "b\\c.py"]
    raws = encode_passage_records(
        pids=[9, 12],
        chunks=chunks,
        sources=sources,
        scope='s "1"',
        metadata={"a": 1, "é": [None, 2.5]},
        created=12.5,
    )
    for raw, pid, chunk, source in zip(raws, [9, 12], chunks, sources, strict=True):
        assert decode_passage(raw) == Passage(
            pid=pid,
            source=source,
            scope='s "1"',
            line_start=chunk.line_start,
            line_end=chunk.line_end,
            byte_start=chunk.byte_start,
            byte_end=chunk.byte_end,
            text=chunk.text,
            metadata={"a": 1, "é": [None, 2.5]},
            created=12.5,
        )


@functools.cache
def _combining_marks() -> dict[int, None]:
    return {c: None for c in range(0x20000) if unicodedata.combining(chr(c))}


def _fold_per_character(text: str) -> str:
    """fold() as written first: every character of the decomposed text looked up."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    return re.sub(r"\s+", " ", text.translate(_combining_marks()).lower())


def test_fold_of_mostly_ascii_text_equals_the_per_character_fold():
    every = "".join(chr(c) for c in range(0x20000) if not 0xD800 <= c < 0xE000)
    rng = random.Random(0)
    samples = [every, every[::-1], "plain ascii only\n\tx"]
    for _ in range(200):
        ascii_part = "".join(rng.choice("ab Z_\n\t") for _ in range(rng.randrange(0, 40)))
        other = "".join(rng.choice(every) for _ in range(rng.randrange(0, 6)))
        accents = "".join(
            rng.choice("e\u0301\u0308A\u030a\u00e9\u00c5\ufb01\u2168 ") for _ in range(4)
        )
        parts = [ascii_part, other, accents]
        rng.shuffle(parts)
        samples.append("".join(parts))
    for text in samples:
        assert fold(text) == _fold_per_character(text)
        assert fold_fast(text) == _fold_per_character(text)


def test_collapsed_spaces_equal_the_regex_substitution():
    spaces = [chr(c) for c in range(0x110000) if re.fullmatch(r"\s", chr(c))]
    rng = random.Random(1)
    samples = ["", " ", "a", " a", "a ", "".join(spaces), *spaces]
    for _ in range(500):
        samples.append("".join(rng.choice([*spaces, "a", "Bc", "\u00e9", "x y"]) for _ in range(8)))
    for text in samples:
        assert collapse_spaces(text) == re.sub(r"\s+", " ", text), repr(text)


def _folded_offset_oracle(text: str, folded: str) -> int:
    """The start of the first line whose fold holds ``folded``, else of the shortest run of
    lines ending first whose fold holds it; -1 if the whole text's fold does not."""
    if folded not in _fold_per_character(text):
        return -1
    lines = text.splitlines(keepends=True)
    starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    for i, line in enumerate(lines):
        if folded in _fold_per_character(line):
            return starts[i]
    for end in range(len(lines)):
        for start in range(end, -1, -1):
            if folded in _fold_per_character("".join(lines[start : end + 1])):
                return starts[start]
    raise AssertionError("unreachable")


def test_folded_match_offsets_equal_the_line_by_line_rule():
    from engram_sdk.memory.verify import _folded_offset

    rng = random.Random(2)
    pieces = [
        "Dct",
        "d\u0301ct",
        "\uff24CT",
        "caf\u00e9",
        "x = 1",
        "  ",
        "\n",
        "\r\n",
        "\u2028",
        "\t",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 14)))
        folded_text = _fold_per_character(text)
        queries = ["dct", "caf\u00e9", "cafe", "x = 1 dct", "zzz", " x"]
        if len(folded_text) > 2:
            at = rng.randrange(0, len(folded_text) - 2)
            queries.append(folded_text[at : at + rng.randrange(2, 9)])
        for q in queries:
            q = fold_fast(q)
            if q.strip():
                assert _folded_offset(text, q) == _folded_offset_oracle(text, q), (text, q)
