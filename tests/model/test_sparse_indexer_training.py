"""DSA's indexer trains with DeepSeek-V3.2's recipe: KL to the head-summed attention."""

import torch
from engram_sdk.model import build_model, get_preset
from engram_sdk.model.indexer_training import (
    indexer_loss,
    indexer_parameters,
    set_indexer_stage,
    topk_overlap,
    warm_up_indexers,
)


def _model(seed: int = 0):
    cfg = get_preset(
        "tiny", tokenizer=None, vocab_size=64, max_seq_len=64, dsa_topk=6, engram_layer_ids=[]
    )
    return build_model(cfg, seed=seed)


def _ids(seed: int, batch: int = 4, t: int = 40) -> torch.Tensor:
    return torch.randint(0, 64, (batch, t), generator=torch.Generator().manual_seed(seed))


def test_dense_warmup_gives_gradients_to_the_indexer_only() -> None:
    model = _model()
    set_indexer_stage(model, "dense_warmup")
    model.train()
    model(_ids(0))
    loss = indexer_loss(model)
    assert loss > 0
    loss.backward()
    indexer = {id(p) for p in indexer_parameters(model)}
    for name, p in model.named_parameters():
        if id(p) in indexer:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name


def test_sparse_stage_keeps_the_lm_loss_and_the_indexer_kl_apart() -> None:
    model = _model()
    set_indexer_stage(model, "sparse")
    model.train()
    ids = _ids(1)
    logits = model(ids[:, :-1])
    lm = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    kl = indexer_loss(model)
    indexer = {id(p) for p in indexer_parameters(model)}
    kl_grads = torch.autograd.grad(kl, indexer_parameters(model))
    assert all(g.abs().sum() > 0 for g in kl_grads)
    lm.backward()
    for name, p in model.named_parameters():
        if id(p) in indexer:  # top-k selection is not differentiable: no LM gradient
            assert p.grad is None, name
        elif p.requires_grad and "engram" not in name:
            assert p.grad is not None, name


def test_warmup_makes_the_indexer_pick_the_keys_dense_attention_weighs_most() -> None:
    model = _model(seed=2).eval()
    held_out = _ids(99)
    before = topk_overlap(model, held_out, 6)
    losses = warm_up_indexers(model, (_ids(s) for s in range(50)), lr=3e-3)
    after = topk_overlap(model.eval(), held_out, 6)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert after > before + 0.1, (before, after)
    assert all(p.requires_grad for p in model.parameters())  # warm-up unfreezes on exit
