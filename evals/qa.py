"""QA tasks: RULER's qa_1 (SQuAD) and qa_2 (HotpotQA) from the user's files in their official
formats, and ``qa_synthetic``, a generated stand-in that is never reported as qa_1/qa_2."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

from engram_sdk.evals import templates
from engram_sdk.evals.length import TokenCounter, fit_count, tolerance_for
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.taskconfig import TaskConfig
from engram_sdk.evals.words import adjectives, nouns

from engram_sdk.errors import InputError

QAItem = dict[str, Any]  # query, outputs, context (doc ids), more_context (doc ids)


def _load_json(path: str, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file {path!r} does not exist")
    try:
        return json.loads(p.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} file {path!r} is not valid JSON: {exc}") from exc


@functools.cache
def read_squad(path: str) -> tuple[list[QAItem], list[str]]:
    """SQuAD v2 JSON (``data[].paragraphs[].qas[]``): answerable questions and all paragraphs."""
    data = _load_json(path, "SQuAD")
    try:
        docs = sorted({p["context"] for d in data["data"] for p in d["paragraphs"]})
        ids = {c: i for i, c in enumerate(docs)}
        qas: list[QAItem] = []
        for d in data["data"]:
            same_article = [ids[p["context"]] for p in d["paragraphs"]]
            for p in d["paragraphs"]:
                for q in p["qas"]:
                    if q.get("is_impossible", False) or not q["answers"]:
                        continue
                    own = ids[p["context"]]
                    qas.append(
                        {
                            "query": q["question"],
                            "outputs": [a["text"] for a in q["answers"]],
                            "context": [own],
                            "more_context": [i for i in same_article if i != own],
                        }
                    )
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"SQuAD file {path!r} is not in the official SQuAD format (missing {exc})"
        ) from exc
    return qas, docs


@functools.cache
def read_hotpotqa(path: str) -> tuple[list[QAItem], list[str]]:
    """HotpotQA dev JSON (a list of ``{question, answer, context: [[title, sentences]]}``)."""
    data = _load_json(path, "HotpotQA")
    try:
        docs = sorted({f"{t}\n{''.join(s)}" for d in data for t, s in d["context"]})
        ids = {c: i for i, c in enumerate(docs)}
        qas = [
            {
                "query": d["question"],
                "outputs": [d["answer"]],
                "context": [ids[f"{t}\n{''.join(s)}"] for t, s in d["context"]],
                "more_context": [],
            }
            for d in data
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"HotpotQA file {path!r} is not in the official HotpotQA format ({exc})"
        ) from exc
    return qas, docs


_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ren",
    "sa",
    "tor",
    "vel",
    "dra",
    "ne",
    "po",
    "quin",
    "bar",
    "shi",
    "mun",
    "tal",
)


def _name(rng: random.Random) -> str:
    return " ".join(
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        for _ in range(2)
    )


@functools.cache
def synthetic_qa(seed: int, n_people: int = 4000) -> tuple[list[QAItem], list[str]]:
    """Generated biographies of fictional people and one question per person about one of them."""
    rng = random.Random(f"qa-synthetic-{seed}")
    ns, adjs = nouns(), adjectives()
    people: dict[str, None] = {}
    while len(people) < n_people:
        people[_name(rng)] = None
    docs, qas = [], []
    for i, person in enumerate(people):
        city = "Port " + rng.choice(ns).capitalize()
        job = rng.choice(ns)
        pet = rng.choice(adjs) + " " + rng.choice(ns)
        docs.append(
            f"{person}\n{person} is a {rng.choice(adjs)} {job} maker who lives in {city}. "
            f"Friends describe {person} as {rng.choice(adjs)} and {rng.choice(adjs)}. "
            f"Every morning {person} walks a {pet} along the river."
        )
        if i % 2 == 0:
            qas.append(
                {
                    "query": f"In which city does {person} live?",
                    "outputs": [city],
                    "context": [i],
                    "more_context": [],
                }
            )
        else:
            qas.append(
                {
                    "query": f"What kind of maker is {person}?",
                    "outputs": [f"{job} maker"],
                    "context": [i],
                    "more_context": [],
                }
            )
    return qas, docs


def qa(
    config: TaskConfig,
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
    qa_files: dict[str, str] | None = None,
) -> Sample:
    """The gold document(s) of question ``index`` among distractor documents, shuffled."""
    task, dataset = config.name, config.params["dataset"]
    files = qa_files or {}
    if dataset == "synthetic":
        qas, docs = synthetic_qa(seed)
    elif dataset in ("squad", "hotpotqa"):
        if dataset not in files:
            raise InputError(
                f"{task} needs the {dataset} dev file in its official format (pass "
                f"--{dataset} PATH); without it run the generated 'qa_synthetic' task instead"
            )
        qas, docs = (read_squad if dataset == "squad" else read_hotpotqa)(
            str(Path(files[dataset]).resolve())
        )
    else:
        raise InputError(f"unknown QA dataset {dataset!r}")
    if not qas:
        raise InputError(f"the {dataset} file holds no answerable questions")
    item = qas[index % len(qas)]
    head_t, tail_t = config.head_and_tail
    prefix = config.answer_prefix
    tail = tail_t.format(query=item["query"])
    gold, more = list(item["context"]), list(item["more_context"])

    def build(num_docs: int) -> str:
        rng = random.Random(f"{task}|{length}|{seed}|{index}")
        if num_docs < len(docs):
            if num_docs - len(gold) > len(more):
                taken = set(gold) | set(more)
                rest = [i for i in range(len(docs)) if i not in taken]
                chosen = gold + more + rng.sample(rest, max(0, num_docs - len(gold) - len(more)))
            else:
                chosen = gold + rng.sample(more, max(0, num_docs - len(gold)))
        else:
            chosen = (list(range(len(docs))) * (num_docs // len(docs) + 1))[:num_docs]
        rng.shuffle(chosen)
        ctx = "\n\n".join(
            templates.QA_DOCUMENT.format(i=i + 1, document=docs[d]) for i, d in enumerate(chosen)
        )
        return head_t + ctx + tail + prefix

    budget = length - config.tokens_to_generate
    text, tokens, n = fit_count(
        build, counter, budget, tolerance_for(length), max(len(gold), 10), n_min=len(gold)
    )
    text = text[: len(text) - len(prefix)]
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=tokens,
        input=text,
        answer_prefix=prefix,
        outputs=item["outputs"],
        query=item["query"],
        context_span=(len(head_t), len(text) - len(tail)),
        meta={"dataset": dataset, "num_docs": n},
    )
