"""Session.generate with the built-in model: a resumed session continues exactly as an uninterrupted one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from engram_sdk.model import build_model, load_checkpoint, save_checkpoint

from engram_sdk.memory import Memory
from engram_sdk.sessions import Session

FIRST = "The lighthouse keeper wrote the tide tables by hand."
SECOND = "What did the keeper write, and how?"
N = 8
ENGRAM = [sys.executable, "-m", "engram_sdk.cli.main"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(build_model("tiny", seed=3), folder)
    return folder


def test_resume_after_process_exit_gives_the_same_greedy_tokens(ckpt: Path, tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    # First half in a child process that exits without closing anything.
    code = (
        "import json, os\n"
        "from engram_sdk.memory import Memory\n"
        "from engram_sdk.sessions import Session\n"
        "from engram_sdk.model import load_checkpoint\n"
        f"model = load_checkpoint({str(ckpt)!r})\n"
        f"m = Memory.open({uri!r})\n"
        "s = Session(m, 'chat', scope='u')\n"
        f"s.append('user', {FIRST!r})\n"
        f"t = s.generate(model, max_new_tokens={N})\n"
        "print(json.dumps(t.token_ids), flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    child_first = json.loads(out.stdout.strip().splitlines()[-1])

    model = load_checkpoint(ckpt)
    with Memory.open(uri) as mem:
        resumed = Session(mem, "chat", scope="u")
        assert [t.role for t in resumed.turns()] == ["user", "assistant"]
        resumed.append("user", SECOND)
        resumed_second = resumed.generate(model, max_new_tokens=N).token_ids
        tok = mem.tokenizer

    # Uninterrupted session in one process, same weights.
    with Memory.open("dram://") as mem2:
        s = Session(mem2, "chat", scope="u")
        s.append("user", FIRST)
        first = s.generate(model, max_new_tokens=N).token_ids
        s.append("user", SECOND)
        second = s.generate(model, max_new_tokens=N).token_ids

    # Independent oracle: the model fed the raw concatenated ids directly.
    p1 = tok.encode(FIRST)
    o1 = model.generate(p1, max_new_tokens=N, temperature=0.0)
    o2 = model.generate(p1 + o1 + tok.encode(SECOND), max_new_tokens=N, temperature=0.0)

    assert len(o1) == N and len(o2) == N
    assert child_first == first == o1
    assert resumed_second == second == o2


def test_cli_chat_with_model_resumes_across_invocations(ckpt: Path, tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"

    def chat(message: str) -> None:
        done = subprocess.run(
            [
                *ENGRAM,
                "chat",
                "--session",
                "c",
                "--store",
                uri,
                "--llm",
                str(ckpt),
                "--max-tokens",
                str(N),
                "--no-memory",
            ],
            input=message + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    chat(FIRST)
    chat(SECOND)
    model = load_checkpoint(ckpt)
    with Memory.open(uri) as mem:
        turns = Session(mem, "c").turns()
        tok = mem.tokenizer
    # Oracle: the built-in model's plain chat format ("role: content" paragraphs), written out
    # here, decoded greedily; the second prompt holds the first exchange (resumed from the store).
    eot = tok.eot_id

    def reply(prompt: str) -> str:
        ids = model.generate(tok.encode(prompt), max_new_tokens=N, temperature=0.0, stop=[[eot]])
        return tok.decode([i for i in ids if i != eot])

    first = reply(f"user: {FIRST}\n\nassistant:")
    second = reply(f"user: {FIRST}\n\nassistant: {first}\n\nuser: {SECOND}\n\nassistant:")
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1].content == first and turns[3].content == second
