"""Batched-decode helpers of ``benchmarks/long_context_gpu.py``: the transformers baseline
model on our config, and why CUDA-graph and eager greedy tokens part."""

from __future__ import annotations

import contextlib

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


def _share(a: list[list[int]], b: list[list[int]]) -> float:
    pairs = [(x, y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)]
    return sum(x == y for x, y in pairs) / max(1, len(pairs))


def _forced_logits(model, prompts: torch.Tensor, forced: torch.Tensor, graph: bool) -> torch.Tensor:
    """Logits (B, new, V) of decoding ``forced`` (B, new) after ``prompts`` (B, P), float32:
    through a CUDA graph over static caches, or eagerly over growing ones."""
    from engram_sdk.model import ModelCache
    from engram_sdk.model.batch_cache import stack_caches
    from engram_sdk.model.generate import prefill
    from engram_sdk.model.generate_graph import GraphedStep

    first = ModelCache()
    last = prefill(model, prompts, first)
    cache = stack_caches([first], capacity=prompts.shape[1] + forced.shape[1],
                         engram_context=model.hasher.context, pad_id=model.hasher.config.pad_id)  # fmt: skip
    stepper = GraphedStep(model, cache) if graph else None
    out = [last.float()]
    for i in range(forced.shape[1] - 1):
        step = forced[:, i : i + 1]
        logits = stepper.step(step) if stepper else model(step, cache)[:, -1]
        out.append(logits.float())
    return torch.stack(out, 1)


def agreement(model, vocab: int, *, batch: int, prompt: int, new: int) -> str:
    """Why CUDA-graph and eager greedy decoding part: one line of evidence (CUDA).

    Free-running greedy tokens of ``generate_batch``: graph vs graph, eager vs eager
    (run-to-run determinism), graph vs eager in bf16 and with the model in float32 (both
    decode over static caches since the fix). Then, teacher-forced on the graph's tokens,
    the graph (static caches) against eager steps over *growing* caches (what eager decoding
    did before): the largest logit difference, how many steps' argmax differ, and at those
    steps the eager top-2 margin in bf16 ulps (a near-tie flips on rounding; a bug would
    flip wide margins).
    """
    from engram_sdk.model.generate import generate_batch

    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(0, vocab, (batch, prompt), generator=g)

    def free(m, graph: bool, bf16: bool = True) -> list[list[int]]:
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            return generate_batch(m, prompts.tolist(), new, cuda_graph=graph)

    g1, g2, e1, e2 = free(model, True), free(model, True), free(model, False), free(model, False)
    forced = torch.tensor(g1, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        lg = _forced_logits(model, prompts.cuda(), forced, True)
        le = _forced_logits(model, prompts.cuda(), forced, False)
    dtype = next(model.parameters()).dtype
    try:  # the same weights in float32 (bf16 -> fp32 -> bf16 is exact), no autocast
        model.float()
        g32, e32 = free(model, True, False), free(model, False, False)
    finally:
        model.to(dtype)
    diff = (lg - le).abs().amax().item()
    flips = lg.argmax(-1) != le.argmax(-1)
    top2 = le[flips].topk(2, dim=-1).values
    ulp = top2[:, 0].abs().clamp(min=1e-30) * 2.0**-7  # bf16 spacing near the top logit
    margins = ((top2[:, 0] - top2[:, 1]) / ulp).tolist()
    worst = f"{max(margins):.1f}" if margins else "-"
    return (f"batch {batch}, prompt {prompt}, {new} new: free-running greedy agreement "
            f"graph=graph {_share(g1, g2):.1%}, eager=eager {_share(e1, e2):.1%}, graph=eager "
            f"bf16 {_share(g1, e1):.1%}, fp32 {_share(g32, e32):.1%}; teacher-forced, graph vs "
            f"eager over growing caches: max |logit diff| {diff:.2e}, argmax differs at "
            f"{int(flips.sum())}/{flips.numel()} steps, eager top-2 margin there <= {worst} "
            f"bf16 ulp")  # fmt: skip
