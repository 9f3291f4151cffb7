"""The fused head + cross-entropy against F.cross_entropy on float64 logits."""

import pytest
import torch
import torch.nn.functional as F
from engram_sdk.model import build_model, get_preset
from engram_sdk.model.loss import IGNORE, linear_cross_entropy, lm_loss

from engram_sdk.errors import InputError


@pytest.mark.parametrize("chunk", [7, 64])
def test_loss_and_gradients_equal_cross_entropy_of_the_full_logits(chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(30, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (30,), generator=g)
    targets[[3, 11]] = IGNORE
    got = linear_cross_entropy(hidden, weight, targets, chunk=chunk)
    (got * 3).backward()
    got_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    want = F.cross_entropy(hidden @ weight.t(), targets, ignore_index=IGNORE)
    (want * 3).backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grads[0], hidden.grad)
    torch.testing.assert_close(got_grads[1], weight.grad)


def test_model_loss_equals_cross_entropy_of_its_logits() -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=97, engram_layer_ids=[], hc_mult=1)
    model = build_model(cfg, seed=0).double()
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    got = lm_loss(model, ids[:, :-1], ids[:, 1:], chunk=5)
    want = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(got, want)


def test_bad_shapes_and_chunk_are_named() -> None:
    with pytest.raises(InputError, match="chunk"):
        linear_cross_entropy(
            torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long), chunk=0
        )
    with pytest.raises(InputError, match="targets"):
        linear_cross_entropy(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))


KERNEL_SCRIPT = """
import torch
import torch.nn.functional as F
from engram_sdk.model.loss import IGNORE, linear_cross_entropy

g = torch.Generator().manual_seed(0)
hidden = torch.randn(13, 16, generator=g, requires_grad=True)
weight = torch.randn(5000, 16, generator=g, requires_grad=True)
targets = torch.randint(0, 5000, (13,), generator=g)
targets[4] = IGNORE
got = linear_cross_entropy(hidden, weight, targets, chunk=6, kernel=True)
got.backward()
grads = hidden.grad.clone(), weight.grad.clone()
hidden.grad = weight.grad = None
want = F.cross_entropy(hidden.double() @ weight.double().t(), targets, ignore_index=IGNORE)
want.backward()
torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
torch.testing.assert_close(grads[0], hidden.grad, atol=1e-5, rtol=1e-4)
torch.testing.assert_close(grads[1], weight.grad, atol=1e-5, rtol=1e-4)
print("ok")
"""


@pytest.mark.slow
def test_triton_softmax_kernel_gives_the_same_loss_and_gradients_interpreted() -> None:
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", KERNEL_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
