"""GPU benchmark: our model vs transformers' DeepseekV3ForCausalLM on the same config and batch.

    python benchmarks/model_gpu.py [--steps 5] [--out results.json]

For each config: training tokens/s (bf16 autocast, AdamW), forward tokens/s, model FLOPs
utilisation (6 x active params x tokens/s for training, 2x for forward, over the H100's
989 TFLOP/s bf16 dense peak) and peak GPU memory, ours and HF side by side.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import torch
import torch.nn.functional as F

PEAK_FLOPS = 989e12
REFERENCE = dict(
    vocab_size=32000,
    hidden_size=1024,
    intermediate_size=2816,
    moe_intermediate_size=512,
    num_hidden_layers=8,
    num_attention_heads=16,
    num_key_value_heads=16,
    n_shared_experts=1,
    n_routed_experts=32,
    routed_scaling_factor=1.0,
    kv_lora_rank=256,
    q_lora_rank=384,
    qk_rope_head_dim=32,
    v_head_dim=64,
    qk_nope_head_dim=64,
    n_group=4,
    topk_group=2,
    num_experts_per_tok=4,
    first_k_dense_replace=1,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    rope_interleave=True,
    tie_word_embeddings=False,
)


def hf_from_ours(cfg) -> dict:
    return dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.dim,
        intermediate_size=cfg.inter_dim,
        moe_intermediate_size=cfg.moe_inter_dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        n_shared_experts=cfg.n_shared_experts,
        n_routed_experts=cfg.n_routed_experts,
        routed_scaling_factor=cfg.route_scale,
        kv_lora_rank=cfg.kv_lora_rank,
        q_lora_rank=cfg.q_lora_rank,
        qk_rope_head_dim=cfg.qk_rope_head_dim,
        v_head_dim=cfg.v_head_dim,
        qk_nope_head_dim=cfg.qk_nope_head_dim,
        n_group=cfg.n_expert_groups,
        topk_group=cfg.n_limited_groups,
        num_experts_per_tok=cfg.n_activated_experts,
        first_k_dense_replace=cfg.n_dense_layers,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_interleave=True,
        tie_word_embeddings=False,
    )


def active_params(model: torch.nn.Module, n_routed: int, n_active: int) -> int:
    total, routed = 0, 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".experts." in name or ".expert_w" in name:
            routed += p.numel()
    return int(total - routed + routed * n_active / n_routed)


def measure(
    model: torch.nn.Module, vocab: int, batch: int, seq: int, steps: int, logits_of, loss_of=None
) -> dict:
    """``loss_of(model, inputs, targets)``: the training loss, when not CE of ``logits_of``."""
    device = "cuda"
    ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if loss_of is not None:
                loss = loss_of(model, ids[:, :-1], ids[:, 1:])
            else:
                logits = logits_of(model, ids[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    train_tps = steps * batch * seq / (time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits_of(model, ids[:, :-1])
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            logits_of(model, ids[:, :-1])
        torch.cuda.synchronize()
    fwd_tps = steps * batch * seq / (time.perf_counter() - t)

    return {"train_tok_s": train_tps, "fwd_tok_s": fwd_tps, "peak_gib": peak}


def run(
    name: str, ours_cfg, hf_kwargs: dict, batch: int, seq: int, steps: int, impls=("hf", "ours")
) -> list[dict]:
    import transformers
    from engram_sdk.model import build_model

    rows = []
    for who in impls:
        gc.collect()
        torch.cuda.empty_cache()
        try:
            if who == "hf":
                torch.manual_seed(0)
                model = transformers.DeepseekV3ForCausalLM(
                    transformers.DeepseekV3Config(**hf_kwargs)
                ).cuda()
                r = measure(
                    model, hf_kwargs["vocab_size"], batch, seq, steps, lambda m, x: m(x).logits
                )
                act = active_params(
                    model, hf_kwargs["n_routed_experts"], hf_kwargs["num_experts_per_tok"]
                )
            else:  # "ours": CE of the logits as for HF; "ours-fused": engram_sdk.model.loss
                from engram_sdk.model.loss import lm_loss  # "ours-compiled": + compiled blocks

                model = build_model(ours_cfg, device="cuda")
                if who == "ours-compiled":
                    for block in model.blocks:
                        block.compile()
                fused = lm_loss if who in ("ours-fused", "ours-compiled") else None
                r = measure(model, ours_cfg.vocab_size, batch, seq, steps, lambda m, x: m(x), fused)
                act = active_params(model, ours_cfg.n_routed_experts, ours_cfg.n_activated_experts)
            r["mfu_train"] = 6 * act * r["train_tok_s"] / PEAK_FLOPS
            r["mfu_fwd"] = 2 * act * r["fwd_tok_s"] / PEAK_FLOPS
        except torch.OutOfMemoryError:
            r = {"error": "out of memory"}
        except Exception as exc:  # e.g. a compile failure: report it, measure the rest
            if who == "hf" or who == "ours":
                raise
            r = {"error": repr(exc)[:200]}
        model = None
        rows.append({"config": name, "impl": who, "batch": batch, "seq": seq, **r})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--configs", default="reference,small,base")
    args = parser.parse_args()
    from engram_sdk.model import get_preset
    from engram_sdk.model.hf import config_from_hf

    rows = []
    wanted = args.configs.split(",")
    if "reference" in wanted:
        ref = {**REFERENCE, "n_routed_experts": 32}
        cfg = config_from_hf({**ref, "rope_interleave": True}).model_copy(
            update={"max_seq_len": 4096}
        )
        rows += run("reference (HF-equivalent, no Engram)", cfg, ref, 4, 4096, args.steps)
    for preset, batch in (("small", 4), ("base", 2)):
        if preset in wanted:
            cfg = get_preset(preset)
            plain = cfg.model_copy(update={"engram_layer_ids": [], "hc_mult": 1})
            hf_kwargs = hf_from_ours(plain)
            rows += run(
                f"{preset} (with Engram)", cfg, hf_kwargs, batch, 4096, args.steps, ("ours",)
            )
            rows += run(f"{preset} (no Engram)", plain, hf_kwargs, batch, 4096, args.steps)
    print(
        f"{'config':40} {'impl':5} {'train tok/s':>12} {'fwd tok/s':>12} {'MFU train':>9} {'peak GiB':>9}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['config']:40} {r['impl']:5} {r['error']}")
        else:
            print(
                f"{r['config']:40} {r['impl']:5} {r['train_tok_s']:12,.0f} {r['fwd_tok_s']:12,.0f} "
                f"{r['mfu_train']:9.1%} {r['peak_gib']:9.1f}"
            )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
