"""Extractive decoding's rule: whatever the model picks among the allowed tokens, the reply is
whole-word spans of the context joined by separators; a started value can only be copied
verbatim; the query's key never starts a span; a closed span never starts again.

The oracle is a brute-force segmentation of the written tokens (every occurrence of every
run in the context tried), independent of the automaton's incremental hypotheses."""

import random
import re
from functools import cache

import numpy as np
import pytest
from engram_sdk.evals.span_automaton import SpanAutomaton, Vocabulary, is_separator

CONTEXT = (
    "One of the special magic uuids for flowery-splendor is: f277a327-340e-47cc.\n"
    "One of the special magic numbers for quiet-otter is: 8154746.\n"
    "The grass is green, and the sky (mostly) is blue. There and back again."
)
END = 0


def toy_vocabulary() -> Vocabulary:
    singles = [bytes([b]) for b in range(32, 127)] + [b"\n"]
    multi = [b" the", b" f", b"f2", b"77", b" is", b"One", b" and", b", ", b": ", b".\n", b" 8"]
    multi += [b"-340e", b"splendor", b"magic", b" green", b"\n\n", b" or", b"  "]
    return Vocabulary([b"", *singles, *multi], [END])


VOCAB = toy_vocabulary()
SPACE, OPENING, CLOSING = b" \t\n\r", b"\"'([{", b".,;:!?)]}\"'"


def word_start(t: bytes, a: int) -> bool:
    return chr(t[a]).isalnum() and (a == 0 or t[a - 1] in SPACE or t[a - 1] in OPENING)


def word_end(t: bytes, b: int) -> bool:
    while b < len(t) and t[b] in CLOSING:
        b += 1
    return b == len(t) or t[b] in SPACE


def span_starts(t: bytes, run: bytes) -> list[int]:
    """Word starts ``a`` where ``run`` is ``t[a:...]`` or ``" " + t[a:...]``."""
    found = []
    for m in re.finditer(re.escape(run), t):
        a = m.start()
        if word_start(t, a):
            found.append((a, m.end()))
        elif run[:1] == b" " and a + 1 < len(t) and word_start(t, a + 1):
            found.append((a + 1, m.end()))
    return found


def segmentations_ok(tokens: list[int], t: bytes, banned: set[bytes], no_repeat: bool) -> bool:
    pieces = [VOCAB.pieces[i] for i in tokens]

    @cache
    def ok(i: int, after_span: bool, used: frozenset[int]) -> bool:
        if i == len(pieces):
            return True
        if is_separator(pieces[i]) and ok(i + 1, False, used):
            return True
        if after_span:
            return False
        for j in range(i + 1, len(pieces) + 1):
            run = b"".join(pieces[i:j])
            for a, b in span_starts(t, run):
                if re.match(rb"[A-Za-z0-9]+", t[a:]).group(0).lower() in banned:
                    continue
                if no_repeat and a in used:
                    continue
                last = j == len(pieces)
                if (last or word_end(t, b)) and ok(j, True, used | {a}):
                    return True
        return False

    return ok(0, False, frozenset())


@pytest.mark.parametrize("no_repeat", [True, False])
def test_any_walk_through_allowed_tokens_is_spans_of_the_context(no_repeat):
    rng = random.Random(7)
    text = CONTEXT.encode()
    banned = {"quiet", "otter"}
    for _ in range(60):
        auto = SpanAutomaton(CONTEXT, VOCAB, banned=banned, no_repeat=no_repeat)
        written: list[int] = []
        for _ in range(rng.randrange(1, 14)):
            allowed = [int(i) for i in auto.allowed() if i != END]
            assert allowed, "the automaton left the model nothing to write"
            token = rng.choice(allowed)
            auto.step(token)
            written.append(token)
        assert segmentations_ok(written, text, {b.encode() for b in banned}, no_repeat), [
            VOCAB.pieces[i] for i in written
        ]


def feed(auto: SpanAutomaton, text: bytes) -> None:
    for b in text:
        auto.step(VOCAB.pieces.index(bytes([b])))


def test_a_started_value_continues_only_as_the_context_has_it():
    auto = SpanAutomaton(CONTEXT, VOCAB)
    feed(auto, b": f277a")
    allowed = {VOCAB.pieces[i] for i in auto.allowed()}
    rest = CONTEXT.encode()[CONTEXT.encode().find(b"f277a") + 5 :]
    assert allowed == {p for p in allowed if p and rest.startswith(p)}
    assert b"3" in allowed and b"4" not in allowed and b"," not in allowed  # no early close


def test_a_value_closes_only_at_a_word_end():
    auto = SpanAutomaton(CONTEXT, VOCAB)
    feed(auto, b" 8154746")
    allowed = auto.allowed()
    assert END in allowed and VOCAB.pieces.index(b",") in allowed
    cut = SpanAutomaton(CONTEXT, VOCAB)
    feed(cut, b" 81547")
    assert END not in cut.allowed()


def test_the_query_key_never_starts_a_span():
    key = "flowery-splendor"
    auto = SpanAutomaton(CONTEXT, VOCAB, banned={"flowery", "splendor"})
    auto.step(VOCAB.pieces.index(b" "))
    starts = {VOCAB.pieces[i] for i in auto.allowed()}
    assert b"f" in starts  # f277a327 starts with "f"
    feed(auto, b"f")
    continuations = {VOCAB.pieces[i] for i in auto.allowed()}
    assert b"l" not in continuations and b"2" in continuations  # "flowery" was never open
    free = SpanAutomaton(CONTEXT, VOCAB)
    free.step(VOCAB.pieces.index(b" "))
    feed(free, b"f")
    assert b"l" in {VOCAB.pieces[i] for i in free.allowed()}, key


def test_a_closed_span_never_starts_again():
    auto = SpanAutomaton("7001131, 4312950 and 7001139.", VOCAB, no_repeat=True)
    feed(auto, b"7001131, ")
    feed(auto, b"7")
    nxt = {VOCAB.pieces[i] for i in auto.allowed()}
    assert nxt == {b"0"} or b"0" in nxt
    feed(auto, b"00113")
    assert {VOCAB.pieces[i] for i in auto.allowed()} >= {b"9"}
    assert b"1" not in {VOCAB.pieces[i] for i in auto.allowed()}


def test_mask_keeps_scores_of_allowed_tokens_only():
    auto = SpanAutomaton(CONTEXT, VOCAB)
    scores = np.arange(VOCAB.size, dtype=np.float32)
    out = auto.mask(scores)
    allowed = auto.allowed()
    assert np.array_equal(out[allowed], scores[allowed])
    assert np.isneginf(np.delete(out, allowed)).all()
