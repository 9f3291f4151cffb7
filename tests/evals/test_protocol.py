"""Every model reaches the runner through the declared Adapter protocol."""

import pytest
from engram_sdk.evals import OracleAdapter, generate, run_samples
from engram_sdk.evals.adapters import ADAPTER_FIELDS, BaseAdapter, as_adapter
from engram_sdk.evals.api import counter_for
from engram_sdk.evals.length import TiktokenCounter
from engram_sdk.evals.memo_counter import MemoCounter

from engram_sdk.errors import InputError


class Bare:
    """Has ``answer`` but none of the fields an adapter declares."""

    name = "bare"

    def answer(self, sample):
        return ""


class Windowed(BaseAdapter):
    name = "windowed"
    max_context = 600
    template_tokens = 7
    token_counter = TiktokenCounter(threads=1)

    def answer(self, sample):
        return sample.outputs[0]


def test_an_object_without_the_fields_is_refused_by_name(tmp_path):
    (s,) = generate("niah_single_1", 512, 1, TiktokenCounter(threads=1))
    with pytest.raises(InputError, match="Bare is not an eval model") as err:
        run_samples([s], Bare(), tmp_path / "p.jsonl", progress=False)
    assert ADAPTER_FIELDS in str(err.value)
    assert as_adapter(OracleAdapter()).max_context is None


def test_declared_window_counter_and_template_are_used(tmp_path):
    model = Windowed()
    counter = counter_for(model)
    assert isinstance(counter.inner, MemoCounter) and counter.reserve == 7
    (s,) = generate("niah_single_1", 512, 1, counter)
    assert s.tokens <= 512
    assert s.length + 7 == s.length_w_model_temp
    (long,) = generate("niah_single_1", 1024, 1, counter)
    with pytest.raises(InputError, match="context of 600"):
        run_samples([long], model, tmp_path / "p.jsonl", progress=False)
