"""``POST /v1/memory/search`` passes ``match`` to ``Memory.search``: a quote outranks the same
words apart by phrase, ties with them by words; a bad ``match`` is a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.live import Live, serve
from tests.server.test_proxy_passthrough import upstream  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:  # noqa: F811
    root = tmp_path_factory.mktemp("match")
    args = ["--store", f"lmdb://{root / 'store'}", "--upstream", upstream]
    with serve(args, root / "proxy.log") as live:
        yield live


def test_search_by_words_ties_a_quote_with_the_same_words_apart(proxy: Live) -> None:
    for text, source in (
        ("the ledger commit order", "quote.txt"),
        ("commit then ledger", "apart.txt"),
    ):
        added = httpx.post(proxy.v1 + "/memory/add", json={"text": text, "source": source})
        assert added.status_code == 200, added.text
    ask = {"query": "ledger commit", "k": 2}
    by_phrase = httpx.post(proxy.v1 + "/memory/search", json=ask).json()
    by_words = httpx.post(proxy.v1 + "/memory/search", json={**ask, "match": "words"}).json()
    assert by_phrase[0]["source"] == "quote.txt" and by_phrase[0]["score"] > by_phrase[1]["score"]
    assert {h["source"] for h in by_words} == {"quote.txt", "apart.txt"}
    assert by_words[0]["score"] == by_words[1]["score"]
    bad = httpx.post(proxy.v1 + "/memory/search", json={**ask, "match": "exact"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "match"
