"""Offsets map every token back to the user's exact characters; bad input is refused clearly."""

import unicodedata

import pytest

from service.engine.errors import ContextTooLongError, EmptyInputError, QuestionTooLongError

TEXTS = [
    "A gorgeous, moving film.",
    "Crème brûlée à la française — naïve café",
    "Great movie 😀👍🏽 would watch again!!",
    "東京は日本の首都です。北京也是。",
    "   lots\tof \n\n  odd    whitespace   ",
    "mixed ＡＢＣ full-width and ﬁ ligature",
]


def _fold(text: str) -> str:
    """What BERT's uncased normaliser does to text: lowercase, strip accents (as this vocab stores them)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_round_trip(tokenizer, text):
    encoded = tokenizer.encode_text(text)
    assert encoded.ids[0] == tokenizer.cls_id and encoded.ids[-1] == tokenizer.sep_id
    for token_id, (start, end) in zip(encoded.ids[1:-1], encoded.offsets[1:-1], strict=True):
        assert 0 <= start < end <= len(text)
        piece = text[start:end]
        assert piece.strip() == piece  # never points into whitespace
        token = tokenizer.id_to_token(token_id).removeprefix("##")
        if token != "[UNK]":
            assert _fold(token) in _fold(unicodedata.normalize("NFKC", piece)) or _fold(piece) in _fold(token)


def test_every_non_space_character_is_covered(tokenizer):
    text = TEXTS[3] + " " + TEXTS[2]
    covered = set()
    for start, end in tokenizer.encode_text(text).offsets[1:-1]:
        covered.update(range(start, end))
    assert {i for i, ch in enumerate(text) if not ch.isspace()} <= covered


def test_long_text_is_truncated_and_flagged(tokenizer):
    text = "word " * 20_000  # 100k characters
    encoded = tokenizer.encode_text(text)
    assert encoded.truncated and len(encoded) == tokenizer.max_tokens and encoded.text_tokens == 20_000
    assert not tokenizer.encode_text("short text").truncated


@pytest.mark.parametrize("text", ["", "   ", "\n\t  ", "\x00\x01\x7f", "\u200b"])
def test_empty_text_is_refused(tokenizer, text):
    with pytest.raises(EmptyInputError) as err:
        tokenizer.encode_text(text)
    assert err.value.field == "text"


def test_control_characters_inside_text_are_dropped_but_offsets_stay_true(tokenizer):
    text = "good\x00 film\x07"
    encoded = tokenizer.encode_text(text)
    assert [text[s:e] for s, e in encoded.offsets[1:-1]] == ["good", "film"]


def test_qa_windows_cover_the_context_with_overlap(tokenizer):
    context = " ".join(f"w{i}" for i in range(600))
    qa = tokenizer.encode_qa("which word?", context, max_seq_len=128, doc_stride=32)
    assert len(qa.windows) > 1
    seen = []
    for window in qa.windows:
        assert len(window) <= 128
        spans = [o for o in window.context_offsets if o is not None]
        assert spans and all(context[s:e].strip() for s, e in spans)
        seen.append((spans[0][0], spans[-1][1]))
    assert seen[0][0] == 0 and seen[-1][1] == len(context)
    for (_, prev_end), (next_start, _) in zip(seen, seen[1:], strict=False):
        assert next_start < prev_end  # consecutive windows overlap


def test_question_too_long_and_context_too_long(tokenizer):
    with pytest.raises(QuestionTooLongError):
        tokenizer.encode_qa("why " * 100, "some context", max_question_len=64)
    with pytest.raises(ContextTooLongError):
        tokenizer.encode_qa("what?", "word " * 20_000, max_seq_len=384, max_windows=16)
    with pytest.raises(EmptyInputError) as err:
        tokenizer.encode_qa("what?", "   ")
    assert err.value.field == "context"


def test_a_word_cut_by_a_window_edge_is_only_the_part_the_window_holds(tokenizer):
    """As the Hugging Face pipeline's per-window word_to_chars: an answer ending at a window's last token may not
    reach past what that window read."""
    context = " ".join(["antidisestablishmentarianism"] * 60)  # each word several pieces: edges cut words
    qa = tokenizer.encode_qa("which word?", context, max_seq_len=64, doc_stride=16)
    cut = 0
    for window in qa.windows:
        spans = [o for o in window.context_offsets if o is not None]
        first, last = spans[0][0], spans[-1][1]
        for word in window.context_word_offsets:
            if word is not None:
                assert first <= word[0] and word[1] <= last
        whole = [w for w in window.context_word_offsets if w is not None]
        cut += whole[0][1] - whole[0][0] < len("antidisestablishmentarianism")
        cut += whole[-1][1] - whole[-1][0] < len("antidisestablishmentarianism")
    assert cut > 0  # the case this is about did occur
