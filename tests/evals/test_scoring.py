"""RULER's metrics against hand-computed values."""

import pytest
from engram_sdk.evals.scoring import postprocess, string_match_all, string_match_part

from engram_sdk.errors import InputError


def test_match_all_is_mean_fraction_of_references_found_case_insensitive():
    preds = ["The numbers are 123 and 456", "nothing here", "ABC-def"]
    refs = [["123", "456", "789", "000"], ["x"], ["abc-DEF"]]
    # (2/4 + 0 + 1) / 3 * 100 = 50.0
    assert string_match_all(preds, refs) == 50.0


def test_match_part_counts_a_sample_when_any_reference_is_found():
    preds = ["Paris, France", "it is lyon", "no idea"]
    refs = [["paris", "rome"], ["Marseille", "Lyon"], ["Nice"]]
    assert string_match_part(preds, refs) == round(2 / 3 * 100, 2) == 66.67


def test_rounding_matches_ruler_two_decimals():
    assert string_match_all(["a", "", ""], [["a", "b", "c"], ["z"], ["z"]]) == round(1 / 9 * 100, 2)


def test_postprocess_turns_control_characters_into_newlines():
    assert postprocess("  1234\x00567\t \n") == "1234\n567"


@pytest.mark.parametrize(
    ("preds", "refs"), [([], []), (["a"], []), (["a"], ["abc"]), (["a"], [[]])]
)
def test_bad_inputs_raise_input_error(preds, refs):
    with pytest.raises(InputError):
        string_match_all(preds, refs)
