"""DeepSeek-V4.1's Engram tables: FP8 E4M3 rows with E8M0 scales per 32 channels as one
264-byte row type in real stores, against torch's float8_e4m3fn; a checkpoint's FP8 tables
copied into a store; a tiny V4.1 model with DEAD positions."""

from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.model.quant import dequantize
from engram_sdk.model.v4 import V4Config, build_v4
from engram_sdk.model.v4.engram import iter_engram_chunks
from engram_sdk.model.v4.hf import export_hf_v4, load_hf_v4
from engram_sdk.stores import open_store
from engram_sdk.stores.fp8_rows import (
    create_fp8_table,
    decode_rows,
    encode_rows,
    gather_fp8,
    import_fp8_table,
    row_bytes,
)
from safetensors.torch import save_file

from engram_sdk.hashing import DEAD_ID


def test_fp8_rows_round_trip_as_torch_float8_e4m3fn_with_power_of_two_scales() -> None:
    assert row_bytes(256) == 264
    torch.manual_seed(0)
    x = torch.randn(50, 256) * torch.logspace(-3, 3, 50)[:, None]
    raw = encode_rows(x)
    assert raw.shape == (50, 264) and raw.dtype == np.int8
    blocks = x.view(50, 8, 32)
    exp = torch.ceil(torch.log2(blocks.abs().amax(-1) / 448.0))  # the smallest safe power
    want = ((blocks / torch.exp2(exp)[..., None]).to(torch.float8_e4m3fn).float()
            * torch.exp2(exp)[..., None]).view(50, 256)  # fmt: skip
    got = decode_rows(raw, 256)
    assert torch.equal(got, want) and torch.equal(decode_rows(torch.from_numpy(raw), 256), want)
    assert torch.equal(decode_rows(encode_rows(got), 256), got)  # decoded rows are fixed points
    torch.testing.assert_close(got, x, rtol=0.0625, atol=0.0)


@pytest.mark.parametrize("scheme", ["lmdb", "shards"])
def test_checkpoint_fp8_table_copies_into_a_store_bit_for_bit(tmp_path: Path, scheme: str) -> None:
    torch.manual_seed(1)
    rows, dim = 1000, 256
    values = (torch.randn(rows, dim) * 40).to(torch.float8_e4m3fn)
    scales = torch.randint(100, 140, (rows, dim // 32), dtype=torch.uint8)
    save_file({"layers.1.engram.embed.weight": values, "layers.1.engram.embed.scale": scales,
               "layers.1.engram.wkv.weight": torch.randn(4, 4)}, str(tmp_path / "model.safetensors"))  # fmt: skip
    with open_store(f"{scheme}://{tmp_path / 'store'}", "w") as store:
        chunks = iter_engram_chunks(tmp_path, 1, chunk_rows=300)
        spec = import_fp8_table(store, "engram.1", chunks, rows=rows, dim=dim)
        assert spec.row_bytes == 264
    with open_store(f"{scheme}://{tmp_path / 'store'}", "r") as store:
        ids = np.array([0, 999, 17, 17, 500])
        got = gather_fp8(store, "engram.1", ids, dim)
    want = dequantize(values, scales)[ids]  # the checkpoint loader's own dequantisation
    assert torch.equal(got, want)


def tiny_v41() -> V4Config:
    return V4Config(vocab_size=300, n_layers=3, attn_types=["sliding_attention"] * 3,
                    mlp_types=["hash_moe", "moe", "moe"], engram_layer_ids=[1],
                    engram_vocab_size=1000, engram_n_heads=2, engram_head_dim=32,
                    engram_max_ngram_size=3, hc_mult=2)  # fmt: skip


def test_v41_model_dead_positions_get_no_engram_and_block_the_look_back() -> None:
    model = build_v4(tiny_v41()).eval()
    with torch.no_grad():
        model.layers[1].engram.table.embedding.weight.normal_()
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 6] = False
    addresses = model.engram_addresses(ids, mask)[1]
    canon = ids.clone()
    canon[0, 6] = DEAD_ID
    assert torch.equal(addresses, model.hasher.hash_torch(canon, 1, flat=True))
    after = model.hasher.hash_torch(canon[:, 7:], 1, flat=True)  # restarts after the DEAD token
    assert torch.equal(addresses[:, 7:], after)
    table = model.layers[1].engram.table.embedding.weight
    with torch.no_grad():
        base = model(ids, mask)
        table[addresses[0, 6]] += 5.0  # rows only the DEAD position reads: its gate is shut
        assert torch.equal(model(ids, mask), base)
        table[addresses[0, 5]] += 5.0  # a live position's rows do change its logits
        changed = (model(ids, mask) - base).abs().amax(-1)[0]
    assert changed[5] > 0.1 and changed[:5].max() < 1e-5  # (expert batches change rounding)


def test_v41_model_exports_and_loads_with_its_engram(tmp_path: Path) -> None:
    model = build_v4(tiny_v41()).eval()
    export_hf_v4(model, tmp_path, max_shard_bytes=100_000)
    back = load_hf_v4(tmp_path).eval()
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert torch.equal(back(ids), model(ids))


def test_v41_model_reads_its_engram_rows_from_an_fp8_store(tmp_path: Path) -> None:
    from engram_sdk.table_runtime import Fp8StoreTable

    model = build_v4(tiny_v41()).eval()
    weight = model.layers[1].engram.table.embedding.weight
    with torch.no_grad():
        weight.normal_()
    raw = encode_rows(weight.detach())
    with torch.no_grad():
        weight.copy_(decode_rows(raw, 32))  # the in-memory model holds the FP8-rounded rows
    ids = torch.randint(0, 300, (2, 15), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model(ids)
    with open_store(f"lmdb://{tmp_path / 'rows'}", "w") as store:
        spec = create_fp8_table(store, "engram.1", len(raw), 32)
        store.scatter("engram.1", np.arange(len(raw)), raw)
        assert spec.row_bytes == 33  # 32 E4M3 bytes + one E8M0 scale
    with open_store(f"lmdb://{tmp_path / 'rows'}", "r") as store:
        model.set_engram_table(1, Fp8StoreTable(store, "engram.1", 32))
        with torch.no_grad():
            assert torch.equal(model(ids), want)
