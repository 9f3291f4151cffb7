"""Training lowers the loss; checkpoints round-trip; resume is exact; sessions resume generation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engram_sdk.model import build_model, get_preset, load_checkpoint, save_checkpoint
from engram_sdk.model.train import TokenStream, TrainConfig, train

from engram_sdk.corpus import read_token_ids
from engram_sdk.errors import InputError
from tests.conftest import CliRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stream() -> TokenStream:
    return TokenStream(read_token_ids([ROOT / "stores"]))


def test_tiny_model_learns(stream: TokenStream) -> None:
    model = build_model(get_preset("tiny", max_seq_len=128))
    losses = train(
        model,
        stream,
        TrainConfig(steps=40, batch_size=4, seq_len=64, warmup_steps=5),
        progress=False,
    )
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 2.0, (first, last)


def test_resume_is_exact(stream: TokenStream, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=6, batch_size=2, seq_len=32, warmup_steps=2, checkpoint_every=3)
    straight = build_model(get_preset("tiny", max_seq_len=64), seed=1)
    losses_a = train(straight, TokenStream(stream.ids), cfg, out_dir=tmp_path / "a", progress=False)
    resumed = build_model(
        get_preset("tiny", max_seq_len=64), seed=99
    )  # weights come from the checkpoint
    losses_b = train(
        resumed, TokenStream(stream.ids), cfg, resume=tmp_path / "a" / "step-000003", progress=False
    )
    assert losses_b == losses_a[3:]
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_checkpoint_round_trip_and_validation(tmp_path: Path) -> None:
    model = build_model(get_preset("tiny", tokenizer=None, vocab_size=300))
    ids = torch.randint(0, 300, (1, 10))
    save_checkpoint(model, tmp_path / "ck")
    assert (
        not list((tmp_path / "ck").glob("*.pkl"))
        and (tmp_path / "ck" / "model.safetensors").exists()
    )
    again = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["dim"] = 32
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"does not fit the model.*mismatched"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(InputError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path)


def test_session_generate_resumes_exactly_after_the_process_exits(tmp_path: Path) -> None:
    model = build_model(get_preset("tiny", max_seq_len=256), seed=5)
    save_checkpoint(model, tmp_path / "ck")
    uri = f"lmdb://{tmp_path / 'mem'}"
    step = (
        "import sys\n"
        "from engram_sdk.memory import Memory\n"
        "from engram_sdk.sessions import Session\n"
        "from engram_sdk.model import load_checkpoint\n"
        f"m = load_checkpoint({str(tmp_path / 'ck')!r})\n"
        f"with Memory.open({uri!r}) as mem:\n"
        "    s = Session(mem, 'chat')\n"
        "    if not s.turns():\n"
        "        s.append('user', 'Tell me about engrams.')\n"
        "    print(s.generate(m, max_new_tokens=5).token_ids)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", step], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    from engram_sdk.memory import Memory
    from engram_sdk.sessions import Session

    with Memory.open("dram://") as mem:
        s = Session(mem, "chat")
        s.append("user", "Tell me about engrams.")
        first = s.generate(model, max_new_tokens=5).token_ids
        second = s.generate(model, max_new_tokens=5).token_ids
    assert [json.loads(r) for r in runs] == [first, second]


def test_cli_model_info_and_train(engram_cli: CliRunner, tmp_path: Path) -> None:
    out = engram_cli("model", "info", "hypothetical-v4-1t", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] > 9e11
    run = engram_cli(
        "train",
        ROOT / "stores",
        "--out",
        tmp_path / "run",
        "--steps",
        "3",
        "--seq-len",
        "32",
        "--batch-size",
        "2",
        "--no-progress",
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "step-000003" / "checkpoint.json").exists()
