"""The harness against RULER's and gkamradt's behaviour: registry, lengths, vt example,
grid repeats, nulls, remove_newline_tab, depth spacing."""

import json
import re
import subprocess

import numpy as np
import pytest
from engram_sdk.evals import (
    TASKS,
    CallableAdapter,
    TiktokenCounter,
    build_report,
    generate,
    get_haystack,
    niah_samples,
    run_samples,
    spaced_depths,
)
from engram_sdk.evals.flatten import remove_newline_tab
from engram_sdk.evals.length import ReservingCounter
from engram_sdk.evals.pool import Job, generate_all
from engram_sdk.evals.runner import read_samples, write_samples
from engram_sdk.evals.tasks import GENERATORS, METRICS_BY_BASE

from engram_sdk.errors import InputError

COUNTER = TiktokenCounter()
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

# RULER scripts/eval/synthetic/constants.py: metric by base task
RULER_METRICS = {
    "niah": "string_match_all",
    "variable_tracking": "string_match_all",
    "common_words_extraction": "string_match_all",
    "freq_words_extraction": "string_match_all",
    "qa": "string_match_part",
}


def test_metric_is_chosen_by_base_task_as_ruler_does():
    for name, spec in TASKS.items():
        assert spec.metric == RULER_METRICS[spec.base], name
    assert {k: v for k, v in METRICS_BY_BASE.items() if k in RULER_METRICS} == RULER_METRICS


def test_generators_use_the_config_they_are_handed():
    spec = TASKS["niah_single_1"]
    cfg = spec.config()
    custom = type(cfg)(
        **{
            **cfg.__dict__,
            "template": "CUSTOM HEAD {type_needle_v}\n{context}\nWHICH {type_needle_v} for {query}?",
            "answer_prefix": " ANSWER:",
            "tokens_to_generate": 77,
            "metric": "string_match_part",
        }
    )
    s = GENERATORS[spec.base](custom, 2048, 0, 1, COUNTER)
    assert s.input.startswith("CUSTOM HEAD number\n") and s.answer_prefix == " ANSWER:"
    assert s.metric == "string_match_part" and s.max_new_tokens == 77
    assert s.length == COUNTER.count(s.input + s.answer_prefix) + 77


def test_no_generator_hard_codes_a_metric_and_no_adapter_switches_on_task_names():
    gens = [str(ROOT / "evals" / f) for f in ("niah.py", "synthetic.py", "qa.py")]
    found = subprocess.run(["rg", "-n", "string_match", *gens], capture_output=True, text=True)
    assert found.stdout == ""
    adapters = [str(ROOT / "evals" / f) for f in ("oracle.py", "adapters.py", "memory_adapter.py")]
    found = subprocess.run(
        ["rg", "-n", r"\.task\b|task ==|startswith\(\"niah", *adapters],
        capture_output=True,
        text=True,
    )
    assert found.stdout == ""


@pytest.mark.parametrize("task", ["niah_single_2", "vt", "cwe", "qa_synthetic"])
def test_saved_length_is_rulers_measured_count(task, tmp_path):
    reserve = 13
    counter = ReservingCounter(COUNTER, reserve)
    samples = generate(task, 2048, 2, counter, seed=5)
    write_samples(samples, tmp_path / "s.jsonl")
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == len(samples)
    for line in lines:
        saved = json.loads(line)
        recount = len(COUNTER._encode(saved["input"] + saved["answer_prefix"]))
        assert saved["length"] == recount + saved["max_new_tokens"]  # RULER's `length`
        assert saved["length_w_model_temp"] == saved["length"] + reserve
        assert saved["target_length"] == 2048 and saved["length_w_model_temp"] <= 2048
    assert [s.id for s in read_samples(tmp_path / "s.jsonl")] == [s.id for s in samples]


def test_vt_worked_example_is_rulers():
    for s in generate("vt", 4096, 3, COUNTER, seed=2):
        example = s.meta["example"]
        # 3-letter names, value, 500-token budget, two spaces before the answer, "\n\n" after
        names = re.findall(r"VAR ([A-Z]+) = ", example)
        assert names and all(len(n) == 3 for n in names)
        m = re.search(r"they are:  ((?:[A-Z]{3} ){4}[A-Z]{3})\n$", example)
        assert m, example[-120:]
        assert s.input.startswith(example + "\nMemorize and track")
        assert COUNTER.count(example) <= 500 + 10
        assert all(len(v) == 5 for v in s.outputs)  # the task itself keeps 5-letter names


def test_grid_repeats_are_distinct_haystacks():
    samples = niah_samples([2048], [50], 3, COUNTER, seed=4)
    assert len({s.id for s in samples}) == 3
    assert len({s.context for s in samples}) == 3
    with pytest.raises(InputError, match="same text at every seed"):
        niah_samples([2048], [50], 2, COUNTER, haystack=get_haystack("noise"))


def test_generation_on_several_processes_gives_the_same_samples():
    jobs = [Job("niah_single_2", 2048, i, 3) for i in range(3)] + [
        Job("niah", 2048, 0, 3, depth=25.0, haystack=get_haystack("essay"))
    ]
    one = generate_all(jobs, COUNTER, workers=1)
    two = generate_all(jobs, COUNTER, workers=2)
    assert [s.model_dump_json() for s in one] == [s.model_dump_json() for s in two]


def test_nulls_are_counted_as_ruler_does(tmp_path):
    samples = generate("niah_single_1", 1024, 4, COUNTER, seed=1)
    texts = ["", " \n\t ", "x", samples[3].outputs[0]]
    replies = {s.id: r for s, r in zip(samples, texts, strict=True)}
    model = CallableAdapter(lambda s: replies[s.id], name="half-empty", takes="sample")
    preds = run_samples(samples, model, tmp_path / "p.jsonl", progress=False)
    report = build_report("ruler", model.name, COUNTER.name, 1, preds)
    (cell,) = report.cells
    assert cell.nulls == 2 and cell.score == 25.0


def test_remove_newline_tab_flattens_like_ruler():
    s = generate("vt", 2048, 1, COUNTER, seed=3)[0]
    f = remove_newline_tab(s, COUNTER)
    ruler = " ".join((s.input + s.answer_prefix).replace("\n", " ").replace("\t", " ").split())
    assert (f.input + f.answer_prefix).strip() == ruler
    assert "\n" not in f.input and "\t" not in f.input
    assert f.length == COUNTER.count(f.input + f.answer_prefix) + f.max_new_tokens
    for stmt in s.meta["chains"][0]:
        assert stmt.strip() in f.context


def test_depth_spacing_is_gkamradts():
    x = np.linspace(0, 100, 35)
    assert spaced_depths(35) == [float(v) for v in np.round(x).astype(int)]
    expected = [
        float(v) if v in (0, 100) else float(np.round(100 / (1 + np.exp(0.1 * (v - 50))), 3))
        for v in x
    ]
    assert spaced_depths(35, spacing="sigmoid") == expected
    with pytest.raises(InputError, match="spacing"):
        spaced_depths(5, spacing="cubic")


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_multikey_3", "vt", "fwe"])
def test_threaded_count_equals_one_pass_count(task):
    from engram_sdk.evals.length import split_for_counting

    s = generate(task, 32768, 1, COUNTER, seed=8)[0]
    code = (ROOT / "evals" / "length.py").read_text() * 4
    for text in (s.input + s.answer_prefix, code, "héllo  wörld\t\n x " * 5000):
        pieces = split_for_counting(text, 16)
        assert "".join(pieces) == text and len(pieces) > 1
        assert sum(len(COUNTER._encode(p)) for p in pieces) == len(COUNTER._encode(text))


def test_essay_units_follow_the_seed_in_both_generators():
    from itertools import islice

    from engram_sdk.evals.haystacks import EssayHaystack

    for vectorized in (True, False):
        hay = EssayHaystack(vectorized=vectorized)
        a, b, c = (list(islice(hay.units(s), 50)) for s in (1, 1, 2))
        assert a == b and a != c
