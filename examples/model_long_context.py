"""Sparse attention (DSA), the indexer's warm-up, chunked prefill and batched generation.

python examples/model_long_context.py [--steps 80] [--topk 8]

A tiny random model with DeepSeek Sparse Attention: the indexer is warmed up on random ids
(only the indexers train, towards the dense attention), which raises how much of the dense
attention's top-k it picks; then a long prompt is prefilled in chunks and three prompts of
different lengths are decoded in one batch, checked against decoding each one alone; the
fused head + cross-entropy training loss is checked against cross-entropy of the logits.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.model.generate import generate_batch, prefill, stream
from engram_sdk.model.indexer_training import topk_overlap, warm_up_indexers
from engram_sdk.model.loss import lm_loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=80, help="indexer warm-up steps")
    parser.add_argument("--topk", type=int, default=8)
    args = parser.parse_args()
    cfg = get_preset("tiny", tokenizer=None, vocab_size=256, max_seq_len=512, dsa_topk=args.topk)
    model = build_model(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    held_out = torch.randint(0, 256, (2, 64), generator=g)
    before = topk_overlap(model.eval(), held_out, args.topk)
    batches = (torch.randint(0, 256, (4, 64), generator=g) for _ in range(args.steps))
    losses = warm_up_indexers(model, batches, lr=3e-3)
    after = topk_overlap(model.eval(), held_out, args.topk)
    print(f"indexer warm-up: KL {losses[0]:.4f} -> {losses[-1]:.4f}; "
          f"top-{args.topk} overlap with dense attention {before:.2f} -> {after:.2f}")  # fmt: skip

    long_prompt = torch.randint(0, 256, (1, 300), generator=g)
    with torch.no_grad():
        one_shot = model(long_prompt)[:, -1]
        chunked = prefill(model, long_prompt, ModelCache(), chunk=64)
    print(f"chunked prefill (64-token chunks) vs one shot: max |diff| "
          f"{(chunked - one_shot).abs().max():.2e}")  # fmt: skip

    ids = torch.randint(0, 256, (2, 65), generator=g)
    with torch.no_grad():
        fused = lm_loss(model, ids[:, :-1], ids[:, 1:], chunk=48)
        plain = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    print(f"fused head + cross-entropy {fused:.6f} vs cross-entropy of the logits {plain:.6f}")

    prompts = [torch.randint(0, 256, (n,), generator=g).tolist() for n in (5, 40, 17)]
    together = generate_batch(model, prompts, 12)
    alone = [list(stream(model, p, 12)) for p in prompts]
    print(f"batched greedy == one at a time: {together == alone}")
    for p, out in zip(prompts, together, strict=True):
        print(f"  prompt of {len(p):3} ids -> {out}")


if __name__ == "__main__":
    main()
