"""Generators: needle placement, lengths, determinism, distractors, QA formats."""

import json
import re

import pytest
from engram_sdk.evals import (
    TASKS,
    TiktokenCounter,
    generate,
    get_haystack,
    niah_samples,
    tolerance_for,
)
from engram_sdk.evals.niah import RULER_DEPTHS

from engram_sdk.errors import InputError

COUNTER = TiktokenCounter()
GENERATED = [t for t in TASKS if t not in ("qa_1", "qa_2")]


@pytest.mark.parametrize("task", GENERATED)
@pytest.mark.parametrize("length", [1024, 4096])
def test_length_is_within_tolerance_recounted_from_scratch(task, length):
    for s in generate(task, length, 2, COUNTER, seed=7):
        total = (
            len(COUNTER._encode(s.input + s.answer_prefix)) + s.max_new_tokens
        )  # independent recount
        assert total == s.tokens
        slack = 200 if task.startswith("qa") else 0  # QA adds whole documents
        assert length - tolerance_for(length) - slack <= total <= length


@pytest.mark.parametrize("task", GENERATED)
def test_same_seed_same_bytes_other_seed_other_bytes(task):
    a = generate(task, 2048, 2, COUNTER, seed=3)
    b = generate(task, 2048, 2, COUNTER, seed=3)
    c = generate(task, 2048, 2, COUNTER, seed=4)
    assert [s.model_dump_json() for s in a] == [s.model_dump_json() for s in b]
    assert a[0].input != c[0].input
    assert a[0].id != a[1].id
    assert all(s.id == s.content_hash() for s in a)


@pytest.mark.parametrize("task", [t for t in GENERATED if t.startswith("niah")])
def test_every_needle_appears_exactly_once_and_answers_come_from_queried_keys(task):
    for s in generate(task, 4096, 3, COUNTER, seed=11):
        needles = s.meta["needles"]
        for n in needles:
            assert s.input.count(n) == 1
        found = dict(re.findall(r"One of the special magic \w+ for (\S+) is: (\S+?)\.", s.context))
        pairs = re.findall(r"One of the special magic \w+ for (\S+) is: (\S+?)\.", s.context)
        queried = set(re.split(r", and |, ", s.query))
        answers = sorted(v for k, v in pairs if k in queried)
        assert answers == sorted(s.outputs), found
        for ref in s.outputs:
            assert s.input.count(ref) == 1


@pytest.mark.parametrize("task", ["niah_multikey_1", "niah_multikey_2", "niah_multikey_3"])
def test_multikey_distractors_never_equal_the_answer(task):
    for s in generate(task, 4096, 4, COUNTER, seed=5):
        pairs = re.findall(r"One of the special magic \w+ for (\S+) is: (\S+?)\.", s.context)
        assert len(pairs) > (1 if task == "niah_multikey_1" else 10)
        distractors = [(k, v) for k, v in pairs if k != s.query]
        assert len(distractors) == len(pairs) - 1
        assert all(v not in s.outputs for _, v in distractors)


def test_essay_niah_depth_is_one_of_rulers_forty_depths():
    for s in generate("niah_single_2", 8192, 4, COUNTER, seed=1):
        (depth,) = s.meta["depths"]
        assert depth in RULER_DEPTHS
        units = s.context.count(". ") + 1
        pos = s.context.index(s.meta["needles"][0])
        assert abs(pos / len(s.context) - depth / 100) < 0.03 or units < 50


@pytest.mark.parametrize("depth", [0, 10, 33, 50, 90, 100])
def test_grid_needle_sits_at_the_requested_token_depth(depth):
    (s,) = niah_samples([8192], [depth], 1, COUNTER, seed=2)
    ctx = s.context
    needle = s.meta["needles"][0]
    assert ctx.count(needle) == 1
    before = len(COUNTER._encode(ctx[: ctx.index(needle)]))
    total = len(COUNTER._encode(ctx.replace(needle, "")))
    assert abs(before / total * 100 - depth) <= 1.0  # one sentence is ~0.3% of 8K
    if depth == 0:
        assert ctx.startswith(needle)
    if depth == 100:
        assert ctx.endswith(needle)


def test_multi_needle_grid_spreads_needles_after_the_depth():
    needles = [
        "Alpha is the first secret.",
        "Beta is the second secret.",
        "Gamma is the third secret.",
    ]
    (s,) = niah_samples([4096], [40], 1, COUNTER, needles=needles, question="q?", answers=["a"])
    pos = [s.context.index(n) for n in needles]
    assert pos == sorted(pos) and all(s.context.count(n) == 1 for n in needles)
    assert pos[0] / len(s.context) == pytest.approx(0.40, abs=0.02)
    assert pos[1] / len(s.context) == pytest.approx(0.60, abs=0.02)


def test_vt_chain_is_complete_and_ordered():
    for s in generate("vt", 4096, 3, COUNTER, seed=9):
        chain = s.meta["chains"][0]
        positions = [s.context.index(stmt.strip()) for stmt in chain]
        assert positions == sorted(positions)
        assert s.outputs == [stmt.split()[1] for stmt in chain]
        assert f"assigned the value {s.query}" in s.answer_prefix


def test_cwe_common_words_are_the_most_frequent():
    s = generate("cwe", 4096, 1, COUNTER, seed=1)[0]
    words = re.findall(r"\d+\. (\S+)", s.context)
    from collections import Counter

    counts = Counter(words)
    assert all(counts[w] == 30 for w in s.outputs)
    assert max(c for w, c in counts.items() if w not in s.outputs) == 3


def test_folder_haystack_is_a_needle_in_a_codebase(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def f(x):\n    return x + 1\n" * 50)
    (tmp_path / "b.md").write_text("# Notes\nSome notes about the code.\n" * 30)
    (tmp_path / ".hidden").write_text("SECRET HIDDEN\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 100)
    hay = get_haystack(str(tmp_path))
    s = generate("niah_single_1", 4096, 1, COUNTER, haystack=hay)[0]
    assert "return x + 1" in s.context and "SECRET HIDDEN" not in s.context
    assert s.input.count(s.meta["needles"][0]) == 1
    assert 4096 - tolerance_for(4096) <= s.tokens <= 4096


def test_one_million_tokens():
    s = generate("niah_single_2", 1_000_000, 1, COUNTER)[0]
    assert 1_000_000 - tolerance_for(1_000_000) <= s.tokens <= 1_000_000
    assert s.input.count(s.meta["needles"][0]) == 1


def _squad(path):
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": f"Paragraph {i} says the color of item {i} is shade{i}.",
                        "qas": [
                            {
                                "id": str(i),
                                "question": f"What color is item {i}?",
                                "is_impossible": False,
                                "answers": [{"text": f"shade{i}", "answer_start": 0}],
                            },
                            {
                                "id": f"x{i}",
                                "question": "unanswerable?",
                                "is_impossible": True,
                                "answers": [],
                            },
                        ],
                    }
                    for i in range(60)
                ],
            }
        ],
    }
    path.write_text(json.dumps(data))


def _hotpot(path):
    data = [
        {
            "_id": str(i),
            "question": f"Who founded town {i}?",
            "answer": f"Founder{i}",
            "context": [
                [f"Town {i}", [f"Town {i} was founded by Founder{i}. "]],
                [f"River {i}", [f"River {i} flows through Town {i}."]],
            ],
        }
        for i in range(60)
    ]
    path.write_text(json.dumps(data))


def test_qa_reads_official_squad_and_hotpotqa(tmp_path):
    _squad(tmp_path / "squad.json")
    _hotpot(tmp_path / "hotpot.json")
    files = {"squad": str(tmp_path / "squad.json"), "hotpotqa": str(tmp_path / "hotpot.json")}
    s1 = generate("qa_1", 512, 3, COUNTER, qa_files=files)
    assert [s.outputs for s in s1] == [["shade0"], ["shade1"], ["shade2"]]
    assert all(s.input.count(f"the color of item {s.index} is") == 1 for s in s1)
    assert s1[0].metric == "string_match_part" and "Document 1:\n" in s1[0].input
    s2 = generate("qa_2", 512, 2, COUNTER, qa_files=files)
    assert s2[1].outputs == ["Founder1"] and "River 1\nRiver 1 flows" in s2[1].input


def test_qa_without_files_points_to_the_synthetic_task(tmp_path):
    with pytest.raises(InputError, match="qa_synthetic"):
        generate("qa_1", 2048, 1, COUNTER)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json"):
        generate("qa_1", 2048, 1, COUNTER, qa_files={"squad": str(tmp_path / "bad.json")})


def test_bad_task_length_and_haystack_are_named():
    with pytest.raises(InputError, match="unknown task"):
        generate("niah_nope", 4096, 1, COUNTER)
    with pytest.raises(InputError, match="budget"):
        generate("niah_single_1", 200, 1, COUNTER)
    with pytest.raises(InputError, match="haystack"):
        get_haystack("/no/such/folder")
