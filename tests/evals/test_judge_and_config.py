"""The NIAH model judge, the run config and the CLI's help text."""

import re

import pytest
from engram_sdk.evals import CallableAdapter, EmptyAdapter, OracleAdapter, build_config, run_niah
from engram_sdk.evals.api import run
from engram_sdk.evals.config import RunConfig
from engram_sdk.evals.judge import parse_score

from engram_sdk.errors import InputError


def _grader(prompt: str) -> str:
    """A judge that gives 10 when the reference's needle is inside the answer, else 2."""
    reference = re.search(r"\[Reference\]\n(.*?)\n\n", prompt, re.S).group(1)
    answer = re.search(r"\[Answer\]\n(.*?)\n\n\[Criteria\]", prompt, re.S).group(1)
    return "10" if reference in answer else "Score: 2 - unrelated"


@pytest.mark.parametrize(("model", "expected"), [(OracleAdapter(), 100.0), (EmptyAdapter(), 20.0)])
def test_judge_grades_every_cell(tmp_path, model, expected):
    judge = CallableAdapter(_grader, name="grader")
    report = run_niah(
        model, lengths=[1024], depths=[0, 100], judge=judge, out_dir=tmp_path, progress=False
    )
    assert all(c.judged for c in report.cells)
    assert report.average[1024] == expected


def test_judge_scores_are_parsed_from_replies():
    assert parse_score("Score: 7") == 7 and parse_score("10/10") == 10
    assert parse_score("no idea") is None and parse_score("11") is None


def test_model_with_a_tiny_window_is_told_what_to_do(tmp_path):
    model = CallableAdapter(lambda p: "", name="tiny")
    model.max_context = 128
    with pytest.raises(InputError, match="longer context"):
        run_niah(model, lengths=[1024], out_dir=tmp_path, progress=False)


def test_run_config_is_saved_and_rerun_from_disk(tmp_path):
    config = build_config(
        kind="ruler",
        model="oracle",
        tasks=["niah_single_1"],
        lengths=[1024],
        n_samples=2,
        out_dir=tmp_path,
        progress=False,
    )
    first = run(config)
    saved = RunConfig.model_validate_json((tmp_path / "run-config-ruler.json").read_text())
    assert saved == config and saved.format_version == 1
    again = run(saved)
    assert again.cells == first.cells
    with pytest.raises(InputError, match="format_version"):
        build_config(kind="ruler", model="oracle", format_version=99)
    with pytest.raises(InputError, match="lengths"):
        build_config(kind="ruler", model="oracle", lengths=[100])


def test_every_eval_option_has_help():
    import typer

    from engram_sdk.cli.main import build_root

    root = build_root()
    ctx = typer.Context(root)
    group = root.get_command(ctx, "eval")
    assert group is not None and group.list_commands(ctx)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        for param in cmd.params:
            if param.param_type_name == "option":
                assert param.help, f"engram eval {name} {param.opts[0]} has no help"
