"""Hostile input to ingest: odd names, pathological ignore files, swapped files, binaries,
other encodings and bad arguments."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.memory.safe_read import Identity, SkipFile, read_limited


def test_a_name_that_is_not_utf8_is_named_in_a_warning_and_the_rest_is_indexed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "good.txt").write_text("unique_good_marker\n")
    os.makedirs(os.fsencode(root) + b"/dir\xff", exist_ok=True)
    with open(os.fsencode(root) + b"/caf\xe9.txt", "wb") as fh:
        fh.write(b"unique_latin_name_marker\n")
    with open(os.fsencode(root) + b"/dir\xff/inside.txt", "wb") as fh:
        fh.write(b"unique_inside_marker\n")
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        assert mem.search("unique_good_marker")[0].source == str(root / "good.txt")
        assert not mem.search("unique_inside_marker", k=1)
    assert sorted(report.skipped_undecodable_names) == [
        f"{root}/caf\\xe9.txt",
        f"{root}/dir\\xff",
    ]
    assert any("caf\\xe9.txt" in w and "UTF-8" in w for w in report.warnings)


def test_a_pathological_gitignore_is_matched_in_linear_time(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".gitignore").write_text("*a" * 16 + "*b\n" + "a" + "*" * 40 + "c\n*.skip\n")
    (root / ("a" * 40)).write_text("unique_forty_marker\n")
    (root / ("a" * 40 + ".skip")).write_text("unique_skipped_marker\n")
    (root / ("a" * 39 + "b")).write_text("unique_ends_in_b_marker\n")
    script = textwrap.dedent(
        f"""
        from engram_sdk.memory import Memory
        with Memory.open("dram://") as mem:
            mem.ingest({str(root)!r}, progress=False)
            print(sorted(m for m in ("forty", "skipped", "ends_in_b")
                         if mem.search(f"unique_{{m}}_marker", k=1, exact_case=True)
                         and mem.search(f"unique_{{m}}_marker", k=1)[0].phrase_match))
        """
    )
    # backtracking matchers take minutes to hours here; a linear one takes milliseconds
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['forty']"


def test_an_invalid_pattern_in_a_nested_gitignore_warns_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / ".gitignore").write_text("secret.txt\n[z-a]\nopen[bracket\n*.log\n")
    (root / "sub" / "secret.txt").write_text("unique_secret_marker\n")
    (root / "sub" / "app.log").write_text("unique_log_marker\n")
    (root / "sub" / "za.txt").write_text("unique_za_marker\n")
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        found = {m for m in ("secret", "log", "za") if mem.search(f"unique_{m}_marker")}
    assert found == {"za"}
    gitignore = str(root / "sub" / ".gitignore")
    assert [w.split(": invalid")[0] for w in report.warnings] == [
        f"{gitignore}:2",
        f"{gitignore}:3",
    ]


def _walked(path: Path) -> Identity:
    st = os.stat(path)
    return Identity(st.st_dev, st.st_ino)


def test_a_file_swapped_for_a_link_out_of_the_root_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    victim = tmp_path / "root" / "notes.txt"
    victim.parent.mkdir()
    victim.write_text("harmless\n")
    walked = _walked(victim)
    victim.unlink()
    victim.symlink_to(secret)
    with pytest.raises(SkipFile) as info:
        read_limited(victim, 1 << 20, walked)
    assert info.value.reason == "unreadable"  # O_NOFOLLOW refuses the link


def test_a_file_swapped_for_a_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("harmless\n")
    walked = _walked(victim)
    victim.unlink()
    os.mkfifo(victim)
    with pytest.raises(SkipFile) as info:
        read_limited(victim, 1 << 20, walked)
    assert info.value.reason == "special"


def test_a_file_swapped_or_grown_past_the_limit_is_not_indexed(tmp_path: Path) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("harmless\n")
    walked = _walked(victim)
    (tmp_path / "other").write_bytes(b"x" * 100)
    os.replace(tmp_path / "other", victim)  # another file (inode) under the walked name
    with pytest.raises(SkipFile) as info:
        read_limited(victim, 1 << 20, walked)
    assert info.value.reason == "changed"
    same = tmp_path / "grows.txt"
    same.write_text("small\n")
    walked = _walked(same)
    with open(same, "r+b") as fh:
        fh.truncate(60 << 20)  # the same inode, now 60 MB (sparse)
    with pytest.raises(SkipFile) as info:
        read_limited(same, 4 << 20, walked)
    assert info.value.reason == "too_large"
    assert read_limited(victim, 100, _walked(victim)) == b"x" * 100


def test_executables_are_skipped_as_binary_in_folders_and_as_single_files(tmp_path: Path) -> None:
    exe = Path(shutil.which("ls") or sys.executable).resolve()
    assert exe.read_bytes()[:4] == b"\x7fELF"
    root = tmp_path / "bin"
    root.mkdir()
    shutil.copy(exe, root / "tool")
    (root / "readme.txt").write_text("unique_readme_marker\n")
    with Memory.open("dram://") as mem:
        folder = mem.ingest(root, progress=False, max_file_bytes=64 << 20)
        single = mem.ingest(exe, progress=False, max_file_bytes=64 << 20, scope="single")
        assert mem.stats()["scopes"]["single"]["passages"] == 0
        assert mem.stats()["scopes"]["default"]["passages"] == 1
    assert folder.skipped_binary == ["tool"] and folder.passages == 1
    assert single.skipped_binary == [exe.name] and single.passages == 0


def test_latin1_files_are_decoded_so_accented_words_are_found(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "old.txt").write_bytes("Une idée naïve du café\n".encode("latin-1"))
    (root / "mixed.txt").write_bytes("déjà vu ".encode() + b"\xff" + b" unique_mixed_marker\n")
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        hits = mem.search("naïve", k=3, exact_case=True)
        assert hits and hits[0].source == str(root / "old.txt") and "naïve" in hits[0].snippet
        # the stored text is the file's text (substring recall of "ïve" is the index's job)
        (passage,) = mem.passages(mem.scope_id("default") or 0, [hits[0].passage_id])
        assert passage is not None and passage.text == "Une idée naïve du café\n"
    assert report.decoded_as == {str(root / "old.txt"): "cp1252"}
    assert report.replaced_bytes == {str(root / "mixed.txt"): 1}


def test_a_negative_size_limit_is_refused_and_nothing_indexed_is_lost(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("unique_kept_marker\n")
    with Memory.open("dram://") as mem:
        mem.ingest(root, progress=False)
        for bad in (-1, 0, "4MB", 1.5, True):
            with pytest.raises(InputError, match="max_file_bytes"):
                mem.ingest(root, progress=False, max_file_bytes=bad)
        assert mem.search("unique_kept_marker")[0].source == str(root / "a.txt")


@pytest.mark.parametrize("bad", [42, None, b"/tmp", ["a"]])
def test_ingest_of_something_that_is_not_a_path_is_a_clear_error(bad: object) -> None:
    with Memory.open("dram://") as mem, pytest.raises(InputError, match="path must be"):
        mem.ingest(bad, progress=False)  # type: ignore[arg-type]


def test_ingest_of_a_missing_path_or_a_fifo_is_a_clear_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with Memory.open("dram://") as mem:
        with pytest.raises(InputError, match="no such file or folder"):
            mem.ingest(tmp_path / "nope", progress=False)
        with pytest.raises(InputError, match="not a regular file or folder"):
            mem.ingest(tmp_path / "fifo", progress=False)


def test_an_ignore_file_that_is_a_fifo_or_a_link_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    os.mkfifo(root / "a" / ".gitignore")  # reading it would block forever
    (tmp_path / "rules").write_text("*.txt\n")
    (root / "b" / ".gitignore").symlink_to(tmp_path / "rules")
    (root / "a" / "x.txt").write_text("unique_fifo_dir_marker\n")
    (root / "b" / "y.txt").write_text("unique_link_dir_marker\n")
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        assert mem.search("unique_fifo_dir_marker") and mem.search("unique_link_dir_marker")
    assert sorted(w.split(":")[0] for w in report.warnings) == [
        str(root / "a" / ".gitignore"),
        str(root / "b" / ".gitignore"),
    ]
