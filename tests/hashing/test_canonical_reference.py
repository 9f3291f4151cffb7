"""Canonical ids against deepseek-ai/Engram's compressed-tokenizer algorithm on all of cl100k.

The oracle is written here from the reference's description: each token's text, decoded
with replacement, is keyed by its byte-level BPE spelling when it contains U+FFFD, else by
the `tokenizers` normaliser chain the reference uses (NFKC, NFD, strip accents, lowercase,
whitespace runs → one space, a lone space kept, strip), else by the text itself; ids are
numbered in order of first appearance. Ids with no token (cl100k's gaps) get their own id.
"""

import pytest

from engram_sdk.canonical import build_table

tokenizers = pytest.importorskip("tokenizers")
SENTINEL = "\ue000"


def byte_level_spelling() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    spelling, extra = {}, 0
    for b in range(256):
        if b in printable:
            spelling[b] = chr(b)
        else:
            spelling[b] = chr(256 + extra)
            extra += 1
    return spelling


def reference_table(enc: object) -> list[int]:
    from tokenizers import Regex, normalizers

    normaliser = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.NFD(),
            normalizers.StripAccents(),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"[ \t\r\n]+"), " "),
            normalizers.Replace(Regex(r"^ $"), SENTINEL),
            normalizers.Strip(),
            normalizers.Replace(SENTINEL, " "),
        ]
    )
    spelling = byte_level_spelling()
    key_to_id: dict[object, int] = {}
    out = []
    for tid in range(enc.n_vocab):
        try:
            raw = enc.decode_single_token_bytes(tid)
        except KeyError:
            key: object = ("gap", tid)
        else:
            text = raw.decode("utf-8", errors="replace")
            if "\ufffd" in text:
                key = "".join(spelling[b] for b in raw)
            else:
                key = normaliser.normalize_str(text) or text
        out.append(key_to_id.setdefault(key, len(key_to_id)))
    return out


def test_canonical_ids_equal_the_reference_algorithm_on_all_of_cl100k() -> None:
    from engram_sdk.tokenizer import get_tokenizer

    enc = get_tokenizer("cl100k_base").encoding
    ours = build_table(enc).tolist()
    want = reference_table(enc)
    assert len(ours) == len(want) == 100277
    differ = [i for i, (a, b) in enumerate(zip(ours, want, strict=True)) if a != b]
    assert not differ, f"{len(differ)} ids differ, first {differ[:5]}"
    assert ours[5809] != ours[30433]  # literal U+FFFD tokens keep ids of their own
