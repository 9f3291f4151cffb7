"""An optional model judge for NIAH answers, as gkamradt grades them (any backend).

The judge model reads the question, the reference (the needle) and the answer, and replies
with a score from 1 to 10 under gkamradt's accuracy criteria; the cell score is that score
/ 10. It is reached through the same adapter interface as the model under test, so any
backend (the built-in model, a local HF/GGUF model, an OpenAI-compatible endpoint) can judge.
"""

from __future__ import annotations

import re

from engram_sdk.evals.adapters import Adapter, Answer
from engram_sdk.evals.sample import Sample

CRITERIA = (
    "Score 1: The answer is completely unrelated to the reference.\n"
    "Score 3: The answer has minor relevance but does not align with the reference.\n"
    "Score 5: The answer has moderate relevance but contains inaccuracies.\n"
    "Score 7: The answer aligns with the reference but has minor omissions.\n"
    "Score 10: The answer is completely accurate and aligns perfectly with the reference.\n"
    "Only respond with a numerical score"
)
JUDGE_PROMPT = (
    "You are grading an answer against a reference.\n\n[Question]\n{question}\n\n"
    "[Reference]\n{reference}\n\n[Answer]\n{answer}\n\n[Criteria]\n{criteria}\n"
)
_SCORE = re.compile(r"\b(10|[1-9])\b")


def parse_score(text: str) -> int | None:
    """The first score from 1 to 10 in the judge's reply, or None."""
    m = _SCORE.search(text)
    return int(m.group(1)) if m else None


class Judge:
    """Grades answers 1-10 with ``model``; unparseable replies count as 1 (and are marked)."""

    def __init__(self, model: Adapter) -> None:
        self.model = model

    def prompt_sample(self, sample: Sample, prediction: str) -> Sample:
        """The sample the judge answers: a prompt holding question, reference and answer."""
        reference = " ".join(sample.meta.get("needles") or sample.outputs)
        text = JUDGE_PROMPT.format(
            question=sample.query, reference=reference, answer=prediction, criteria=CRITERIA
        )
        return sample.model_copy(
            update={
                "input": text,
                "answer_prefix": "Score:",
                "context_span": (0, 0),
                "max_new_tokens": 8,
            }
        )

    def grade(self, sample: Sample, prediction: str) -> tuple[float, dict[str, object]]:
        """(score in [0, 1], info) for ``prediction``."""
        out = self.model.answer(self.prompt_sample(sample, prediction))
        reply = out.text if isinstance(out, Answer) else str(out)
        score = parse_score(reply)
        info: dict[str, object] = {"judge": self.model.name, "judge_reply": reply[:200]}
        info["judge_score"] = score if score is not None else 1
        if score is None:
            info["judge_unparsed"] = True
        return (score or 1) / 10, info
