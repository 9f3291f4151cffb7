"""The linear-time gitignore matcher agrees with ``git check-ignore`` (the reference), in
both of its engines (regex for one-star globs, bit-parallel simulation for the rest)."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.memory.ignore import PatternError, Rule, parse_line

GLOB_PARTS = ["a", "b", ".", "*", "?", "[ab]", "[!a]", "[a-c]", "/", "**/", "\\*"]
PATH_CHARS = "ab.c"


def _ours(glob: str, path: str, is_dir: bool, engine: str = "auto") -> bool:
    rule = parse_line(glob)
    if rule is None:
        return False
    if engine == "nfa":
        rule = Rule(rule.steps, rule.negated, rule.dir_only, rule.anchored, None)
    parts = path.split("/")
    # the walker never descends into an ignored folder, so a parent's match counts
    inside = any(rule.matches("/".join(parts[:i]), True) for i in range(1, len(parts)))
    return inside or rule.matches(path, is_dir)


def _git_ignored(tmp: Path, glob: str, leaves: list[str]) -> dict[tuple[str, bool], bool]:
    """Every file and folder of a tree built from ``leaves``: ignored according to git."""
    nodes: dict[str, bool] = {}
    for leaf in leaves:
        parts = leaf.split("/")
        for i in range(1, len(parts)):
            nodes["/".join(parts[:i])] = True
    for leaf in leaves:
        nodes.setdefault(leaf, False)
    for path, is_dir in sorted(nodes.items()):
        (tmp / path).mkdir(exist_ok=True) if is_dir else (tmp / path).touch()
    (tmp / ".gitignore").write_text(glob + "\n")
    done = subprocess.run(
        ["git", "-C", str(tmp), "check-ignore", "--no-index", "--stdin"],
        input="\n".join(nodes),
        capture_output=True,
        text=True,
    )
    ignored = set(done.stdout.splitlines())
    return {(path, is_dir): path in ignored for path, is_dir in nodes.items()}


def _documented_stars(glob: str) -> bool:
    """``**`` only as a whole path component: the cases gitignore(5) defines."""
    return all(part == "**" or "**" not in part for part in glob.split("/"))


globs = (
    st.lists(st.sampled_from(GLOB_PARTS), min_size=1, max_size=5)
    .map("".join)
    .filter(lambda g: "//" not in g and not g.startswith("#") and _documented_stars(g))
)
components = st.text(PATH_CHARS, min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
paths = st.lists(components, min_size=1, max_size=3).map("/".join)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the oracle")
@settings(max_examples=80, deadline=None)
@given(glob=globs, leaves=st.lists(paths, min_size=1, max_size=6, unique=True))
def test_matches_like_git_check_ignore(glob: str, leaves: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        expected = _git_ignored(root, glob, leaves)
    for (path, is_dir), ignored in expected.items():
        assert _ours(glob, path, is_dir) == ignored, (glob, path, is_dir)
        assert _ours(glob, path, is_dir, "nfa") == ignored, (glob, path, is_dir)


@pytest.mark.parametrize("line", ["[z-a]", "open[bracket", "trailing\\"])
def test_invalid_patterns_raise(line: str) -> None:
    with pytest.raises(PatternError):
        parse_line(line)


def test_negation_comments_and_escapes() -> None:
    assert parse_line("# comment") is None and parse_line("   ") is None
    neg = parse_line("!keep.log")
    assert neg is not None and neg.negated and neg.matches("keep.log", False)
    hashed = parse_line("\\#notes")
    assert hashed is not None and hashed.matches("#notes", False)
    not_a = parse_line("x[!a]y")
    assert not_a is not None and not_a.matches("xby", False) and not not_a.matches("x/y", False)
    folder_only = parse_line("build/")
    assert folder_only is not None
    assert folder_only.matches("x/build", True) and not folder_only.matches("build", False)
