"""Batched-decode helpers of ``benchmarks/long_context_gpu.py``: the transformers baseline
model on our config, and a CUDA-graph-vs-eager logits check."""

from __future__ import annotations

import torch


def hf_model(ours, device: str):
    import transformers

    c = ours.config
    cfg = transformers.DeepseekV3Config(
        vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.inter_dim,
        moe_intermediate_size=c.moe_inter_dim, num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads, num_key_value_heads=c.n_heads,
        n_shared_experts=c.n_shared_experts, n_routed_experts=c.n_routed_experts,
        routed_scaling_factor=c.route_scale, kv_lora_rank=c.kv_lora_rank,
        q_lora_rank=c.q_lora_rank, qk_rope_head_dim=c.qk_rope_head_dim,
        v_head_dim=c.v_head_dim, qk_nope_head_dim=c.qk_nope_head_dim,
        n_group=c.n_expert_groups, topk_group=c.n_limited_groups,
        num_experts_per_tok=c.n_activated_experts, first_k_dense_replace=c.n_dense_layers,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, rope_interleave=True,
        tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.DeepseekV3ForCausalLM(cfg).to(device).eval()
    return model.to(torch.bfloat16) if device == "cuda" else model


def graph_check(model, vocab: int, batch: int = 8, steps: int = 12) -> str:
    """Teacher-forced decode, CUDA graph vs eager on copies of one cache: logits' difference."""
    import copy

    from engram_sdk.model import ModelCache
    from engram_sdk.model.batch_cache import stack_caches
    from engram_sdk.model.generate import prefill
    from engram_sdk.model.generate_graph import GraphedStep

    ids = torch.randint(0, vocab, (batch, 64 + steps), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        first = ModelCache()
        prefill(model, ids[:, :64], first)
        stacked = stack_caches([first], capacity=64 + steps, engram_context=model.hasher.context,
                               pad_id=model.hasher.config.pad_id)  # fmt: skip
        eager_cache = copy.deepcopy(stacked)
        graphed = GraphedStep(model, stacked)
        worst, flips = 0.0, 0
        for i in range(64, 64 + steps):
            step = ids[:, i : i + 1]
            want = model(step, eager_cache)[:, -1].float()
            got = graphed.step(step).float()
            worst = max(worst, ((got - want).abs().max() / want.abs().max()).item())
            flips += int((got.argmax(-1) != want.argmax(-1)).sum())
    return (f"graph vs eager, {steps} teacher-forced steps at batch {batch}: max |diff| "
            f"{worst:.2e} of max |logit|, argmax differs {flips}/{batch * steps}"
            f"{' (graph recorded)' if graphed.graph is not None else ' (no graph!)'}")  # fmt: skip
