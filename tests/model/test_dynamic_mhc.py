"""Dynamic mHC (the paper's per-token mappings, 20 Sinkhorn iterations, sigmoid H^pre)
against transformers' DeepseekV4HyperConnection / HyperHead, and format-1 configs."""

import pytest
import torch
from engram_sdk.model import ModelConfig, build_model, get_preset
from engram_sdk.model.hyper import DynamicHyperConnection, HyperConnection, HyperHead

transformers = pytest.importorskip("transformers")
v4 = pytest.importorskip("transformers.models.deepseek_v4.modeling_deepseek_v4")


def test_dynamic_mhc_and_head_equal_transformers_deepseek_v4() -> None:
    cfg = transformers.DeepseekV4Config(hidden_size=16, hc_mult=4, num_hidden_layers=1)
    torch.manual_seed(0)
    theirs, their_head = v4.DeepseekV4HyperConnection(cfg), v4.DeepseekV4HyperHead(cfg)
    ours = DynamicHyperConnection(4, 16, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.rms_norm_eps)
    head = HyperHead(4, 16, cfg.hc_eps, cfg.rms_norm_eps)
    with torch.no_grad():
        for p in [*theirs.parameters(), *their_head.parameters()]:
            p.normal_(0, 0.5)
        ours.load_state_dict(dict(theirs.state_dict()))
        head.load_state_dict({k.removeprefix("hc_"): v for k, v in their_head.state_dict().items()})
    streams, out = torch.randn(2, 7, 4, 16), torch.randn(2, 7, 16)
    post, comb, collapsed = theirs(streams)
    want = post.unsqueeze(-1) * out.unsqueeze(-2) + comb.transpose(-1, -2) @ streams
    x, maps = ours.read(streams)
    torch.testing.assert_close(x, collapsed, rtol=0, atol=0)
    torch.testing.assert_close(ours.write(streams, out, maps), want, rtol=0, atol=0)
    torch.testing.assert_close(head(streams), their_head(streams), rtol=0, atol=0)
    assert cfg.hc_sinkhorn_iters == ours.iters == get_preset("tiny").sinkhorn_iters == 20


def test_new_models_use_dynamic_mhc_and_format_1_configs_stay_static() -> None:
    model = build_model(get_preset("tiny", tokenizer=None, vocab_size=100))
    assert isinstance(model.blocks[0].hc_attn, DynamicHyperConnection)
    old = ModelConfig(**{**get_preset("tiny").model_dump(exclude={"hc_dynamic", "sinkhorn_iters"}),
                         "format_version": 1, "tokenizer": None, "vocab_size": 100})  # fmt: skip
    assert not old.hc_dynamic and old.sinkhorn_iters == 10
    assert isinstance(build_model(old).blocks[0].hc_attn, HyperConnection)
