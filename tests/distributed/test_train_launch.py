"""``engram train --nproc 2``'s launcher: torchrun ranks against the one-process training run.

Tolerance: step 1's loss comes from identical weights (1e-5, float32 rounding of a different
row split); later losses follow AdamW steps, whose first updates g / (|g| + eps) turn
rounding noise in near-zero gradients into small weight differences: 1e-3 on the loss.
"""

from __future__ import annotations

import json

import pytest

from engram_sdk.distributed.train_main import DistributedTrainRun, launch
from engram_sdk.errors import InputError

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

TEXT = "def add(a, b):\n    return a + b\n\nclass Stack:\n    def push(self, x): ...\n" * 40


def test_two_ranks_train_like_one_process(tmp_path):
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.checkpoint import load_checkpoint
    from engram_sdk.model.train import TokenStream, TrainConfig, train

    from engram_sdk.corpus import read_token_ids

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text(TEXT)
    settings = dict(steps=3, batch_size=4, seq_len=32, warmup_steps=1)
    run = DistributedTrainRun(
        data=[str(corpus)], out=str(tmp_path / "dist"), train=settings, progress=False
    )
    assert launch(run, 2) == 0
    losses = json.loads((tmp_path / "dist" / "losses.json").read_text())

    model = build_model(get_preset("tiny", max_seq_len=128), seed=0)
    expected = train(
        model, TokenStream(read_token_ids([corpus])), TrainConfig(**settings), progress=False
    )
    assert len(losses) == len(expected) == 3
    assert abs(losses[0] - expected[0]) <= 1e-5
    assert max(abs(a - b) for a, b in zip(losses, expected, strict=True)) <= 1e-3
    final = load_checkpoint(tmp_path / "dist" / "step-000003")  # the single-file conversion
    assert (tmp_path / "dist" / "step-000003" / "sharded" / "parallel.json").is_file()
    assert type(final).__name__ == "Transformer"


def test_engram_train_nproc_runs_two_ranks(engram_cli, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text(TEXT)
    out = tmp_path / "run"
    args = ["train", corpus, "--nproc", "2", "--steps", "2", "--batch-size", "2",
            "--seq-len", "16", "--out", out, "--no-progress"]  # fmt: skip
    result = engram_cli(*args)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((out / "losses.json").read_text())) == 2
    assert (out / "step-000002" / "checkpoint.json").is_file()
    refused = engram_cli(*args, "--resume", out / "step-000002")
    assert refused.returncode == 2 and "--resume cannot be combined with --nproc" in refused.stderr


def test_batch_must_divide_by_ranks(tmp_path):
    run = DistributedTrainRun(data=[str(tmp_path)], out=str(tmp_path), train={"batch_size": 3})
    with pytest.raises(InputError, match="--batch-size 3 must divide by --nproc 2"):
        launch(run, 2)
