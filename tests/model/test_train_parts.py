"""Trainer parts against independent oracles: data stream, optimizer groups, lr schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.model import build_model
from engram_sdk.model.train import TokenStream, TrainConfig, lr_factor, make_optimizer

from engram_sdk.corpus import read_token_ids
from engram_sdk.errors import InputError
from engram_sdk.tokenizer import get_tokenizer


def test_stream_from_folder_is_sorted_files_joined_by_eot(tmp_path: Path) -> None:
    texts = {"b.py": "def b():\n    return 2\n", "a.md": "# title\nhello", "sub/c.txt": "ccc"}
    for name, text in texts.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    tok = get_tokenizer()
    expected: list[int] = []
    for path in sorted(tmp_path / n for n in texts):
        expected += [*tok.encode(path.read_text()), tok.eot_id]
    first = TokenStream(read_token_ids([tmp_path]))
    again = read_token_ids([str(tmp_path)])
    assert first.ids.tolist() == expected
    assert again.dtype == np.int64 and again.tolist() == expected


def test_stream_windows_wrap_and_targets_shift_by_one() -> None:
    ids = np.arange(10, dtype=np.int64)
    stream = TokenStream(ids)
    x, y = stream.next_batch(2, 3)
    assert x.tolist() == [[0, 1, 2], [4, 5, 6]]
    assert y.tolist() == [[1, 2, 3], [5, 6, 7]]
    assert stream.position == 6
    x, y = stream.next_batch(2, 3)  # wraps around the corpus
    assert x.tolist() == [[6, 7, 8], [0, 1, 2]]
    assert y.tolist() == [[7, 8, 9], [1, 2, 3]]
    resumed = TokenStream(ids, position=stream.position)
    assert resumed.next_batch(1, 4)[0].tolist() == stream.next_batch(1, 4)[0].tolist()


def test_stream_rejects_missing_paths_and_tiny_corpora(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no-such"):
        read_token_ids([tmp_path / "no-such"])
    with pytest.raises(InputError, match="fewer than 2 tokens"):
        TokenStream(np.array([5], dtype=np.int64))


def test_engram_tables_get_their_own_lr_and_no_decay() -> None:
    model = build_model("tiny")
    cfg = TrainConfig(lr=1e-3, engram_lr=7e-3, weight_decay=0.1)
    opt = make_optimizer(model, cfg)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    tables = [n for n in names if n.endswith("engram.table.embedding.weight")]
    assert len(tables) == len(model.config.engram_layer_ids) > 0
    for name, p in names.items():
        g = group_of[id(p)]
        if name in tables:
            assert (g["base_lr"], g["weight_decay"]) == (7e-3, 0.0), name
        elif p.dim() < 2:
            assert (g["base_lr"], g["weight_decay"]) == (1e-3, 0.0), name
        elif "norm" not in name:
            assert (g["base_lr"], g["weight_decay"]) == (1e-3, 0.1), name
    assert sum(len(g["params"]) for g in opt.param_groups) == len(names)


def test_lr_schedule_is_linear_warmup_then_cosine_to_the_floor() -> None:
    cfg = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    for step in range(10):
        assert lr_factor(step, cfg) == pytest.approx((step + 1) / 10)
    for step in range(10, 111):
        t = (step - 10) / 100
        assert lr_factor(step, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * t)))
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    assert lr_factor(500, cfg) == pytest.approx(0.1)
