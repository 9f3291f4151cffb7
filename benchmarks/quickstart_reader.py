"""How often a reader answers the quickstart's kind of question right, through memory and not.

The memory holds the standard library's ``json`` package (what ``engram quickstart`` ingests
by default); the questions ask which file defines a name, so the answer is only in memory
(the model cannot know the file layout) and is checked by the file name appearing as a word
in the reply. Greedy decoding; the same path as ``engram quickstart`` (augmented_turn with a
400-token recall budget).

    python benchmarks/quickstart_reader.py                    # the offline default model
    python benchmarks/quickstart_reader.py --llm model.gguf   # another reader
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from engram_sdk.llm import SamplingOptions, augmented_turn, load_backend
from engram_sdk.memory import Memory

QUESTIONS = [
    ("Which file defines the class JSONDecoder?", "decoder.py"),
    ("Which file defines the class JSONEncoder?", "encoder.py"),
    ("Which file defines the exception JSONDecodeError?", "decoder.py"),
    ("Which file defines the function py_make_scanner?", "scanner.py"),
    ("Which file defines the regular expression NUMBER_RE?", "scanner.py"),
    ("Which file defines the function py_encode_basestring_ascii?", "encoder.py"),
    ("Which file defines the function py_scanstring?", "decoder.py"),
    ("Which file defines the function JSONObject?", "decoder.py"),
    ("Which file defines the command line tool's main function?", "tool.py"),
    ("Which file defines the function _make_iterencode?", "encoder.py"),
]


def right(reply: str, expected: str) -> bool:
    """``expected`` appears as a word of ``reply`` (``py_make_scanner.py`` is not ``scanner.py``)."""
    return re.search(r"(?<![\w])" + re.escape(expected), reply) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm", default=None, help="reader (default: the offline default model)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument(
        "--context",
        default="passages,focus",
        help="prompt formats of the recalled text to compare (comma-separated)",
    )
    args = ap.parse_args()
    backend = load_backend(args.llm)
    folder = Path(json.__file__).parent
    options = SamplingOptions(max_tokens=args.max_tokens, temperature=0.0)
    with tempfile.TemporaryDirectory() as work, Memory.open(f"lmdb://{work}/m") as mem:
        mem.ingest(folder, progress=False)
        paths = [(f"through memory, {c}", c) for c in args.context.split(",")]
        paths.append(("without memory", None))
        scores = dict.fromkeys((label for label, _ in paths), 0)
        recalled = dict.fromkeys((label for label, c in paths if c), 0)
        t0 = time.perf_counter()
        for question, expected in QUESTIONS:
            for label, context in paths:
                turn = augmented_turn(
                    backend,
                    memory=mem,
                    messages=[{"role": "user", "content": question}],
                    options=options,
                    memory_tokens=400,
                    use_memory=context is not None,
                    context=context or "passages",
                ).complete()
                ok = right(turn.text, expected)
                scores[label] += ok
                if context:
                    cited = any(c.source.endswith("/" + expected) for c in turn.citations)
                    recalled[label] += cited
                print(f"[{label}] {'right' if ok else 'wrong'}: {question} -> {turn.text!r}")
    n = len(QUESTIONS)
    print(f"\nreader {backend.name}, {n} questions, {time.perf_counter() - t0:.0f} s")
    print("| path | right | share |\n|---|---|---|")
    for label, score in scores.items():
        print(f"| {label} | {score}/{n} | {100 * score / n:.0f}% |")
    for label, hits in recalled.items():
        print(f"| ({label}: the right file in the prompt) | {hits}/{n} | |")
    backend.close()


if __name__ == "__main__":
    main()
