"""The Python API answers wrong argument types with an InputError naming the argument."""

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory


@pytest.fixture
def mem() -> Memory:
    m = Memory.open("dram://")
    m.add("Deploys happen on Tuesdays.", source="ops.md")
    m.add("Backups run nightly.", source="backup.md")
    return m


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"k": "5"}, "k"),
        ({"k": 0}, "k"),
        ({"k": True}, "k"),
        ({"exact_case": "yes"}, "exact_case"),
        ({"sources": 3}, "sources"),
        ({"sources": [b"ops.md"]}, "sources"),
        ({"match": "exact"}, "match"),
        ({"match": "words", "k": "all"}, "k='all'"),
        ({"match": "words", "regex": True}, "regex"),
        ({"match": "words", "exact_case": True}, "exact_case"),
    ],
)
def test_search_arguments(mem: Memory, kwargs: dict, named: str) -> None:
    with pytest.raises(InputError, match=named):
        mem.search("Deploys happen", **kwargs)


@pytest.mark.parametrize("query", ["", "   ", None, 5])
def test_search_query(mem: Memory, query: object) -> None:
    with pytest.raises(InputError, match="query"):
        mem.search(query)  # type: ignore[arg-type]


def test_sources_as_one_string_means_that_source(mem: Memory) -> None:
    one = mem.search("happen on Tuesdays", sources="ops.md")
    listed = mem.search("happen on Tuesdays", sources=["ops.md"])
    assert [h.source for h in one] == [h.source for h in listed] == ["ops.md"]
    assert mem.search("happen on Tuesdays", sources="backup.md") == []


@pytest.mark.parametrize("metadata", ["x", ["a"], {1: "a"}, {"a": object()}, {"a": float("nan")}])
def test_add_metadata(mem: Memory, metadata: object) -> None:
    with pytest.raises(InputError, match="metadata"):
        mem.add("text", metadata=metadata)  # type: ignore[arg-type]
