"""The reply guard and the style's length, on text: no model needed."""

from __future__ import annotations

import pytest
from aigent_local.guard import ReplyGuard
from aigent_local.length import DEFAULT_MAX_TOKENS, ReplyLength, reply_length


def guarded(text: str, *, step: int = 3, **kwargs: object) -> tuple[str, ReplyGuard]:
    """``text`` fed in pieces of ``step`` characters, as a model streams it."""
    guard = ReplyGuard(**kwargs)  # type: ignore[arg-type]
    shown = ""
    for i in range(0, len(text), step):
        shown += guard.feed(text[i : i + step])
        if guard.stopped:
            break
    return shown, guard


def test_the_loop_from_the_issue_stops_at_the_first_repeat() -> None:
    shown, guard = guarded("You're not here.\n" * 30)
    assert shown == "You're not here."
    assert guard.stop_reason == "repeated sentence"


@pytest.mark.parametrize("step", [1, 2, 5, 40])
def test_a_repeated_sentence_is_dropped_however_the_text_is_split(step: int) -> None:
    text = "Hello there. I can help. I can also pay. I can help. Goodbye now."
    shown, guard = guarded(text, step=step)
    assert shown == "Hello there. I can help. I can also pay."
    assert guard.stopped


def test_case_punctuation_and_spacing_do_not_make_a_sentence_new() -> None:
    shown, _ = guarded("you can help me with\nYou can help me with!\n\nyou can")
    assert shown == "you can help me with"


def test_new_sentences_pass_through_even_when_they_start_like_old_ones() -> None:
    text = "I can help with agents. I can help with payments too.\nI can"
    shown, guard = guarded(text)
    # The last, unfinished "I can" may be the start of a repeat: it is never shown.
    assert shown == "I can help with agents. I can help with payments too."
    assert not guard.stopped


def test_short_units_may_recur() -> None:
    text = "1. Cats are fine.\n2. Dogs are fine.\n3. Yes. Yes. Birds too."
    shown, guard = guarded(text)
    assert shown == text and not guard.stopped


def test_the_sentence_limit_ends_the_reply_after_the_last_sentence() -> None:
    shown, guard = guarded("One two. Three four! Five six? Seven eight.", max_sentences=3)
    assert shown == "One two. Three four! Five six?"
    assert guard.stop_reason == "sentence limit"
    shown, guard = guarded("No limit here. Two words. Three words. Four words.")
    assert shown.endswith("Four words.") and not guard.stopped


def test_a_speaker_label_copied_from_the_examples_is_dropped() -> None:
    assert guarded("Eliza: The capital is Paris.", speaker="Eliza")[0] == "The capital is Paris."
    assert guarded("  eliza:hi there", step=1, speaker="Eliza")[0] == "hi there"
    # Only the label itself: a name that starts the same way is text.
    assert guarded("Elizabeth is a name.", speaker="Eliza")[0] == "Elizabeth is a name."
    assert guarded("Eliza is here.", speaker="Eliza")[0] == "Eliza is here."


def test_a_sentence_copied_from_an_earlier_reply_is_left_out_and_the_reply_goes_on() -> None:
    earlier = ["Oh, hello there! How can I help you?"]
    text = "Oh, hello there! I can help with agents and payments."
    shown, guard = guarded(text, earlier=earlier)
    assert shown.strip() == "I can help with agents and payments."
    assert not guard.stopped and guard.finish() == ""
    # Written twice in this reply, the copy is a loop: the reply ends there.
    shown, guard = guarded("Oh, hello there! Agents pay. Oh, hello there! More.", earlier=earlier)
    assert shown.strip() == "Agents pay." and guard.stop_reason == "repeated sentence"


def test_a_reply_that_is_all_copy_is_shown_rather_than_nothing() -> None:
    earlier = ["Oh, hello there! How can I help you?"]
    shown, guard = guarded("Oh, hello there! How can I help you?", earlier=earlier)
    assert shown == ""
    assert guard.finish() == guard.finish() == "Oh, hello there! How can I help you?"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (["answer in one to three short sentences", "be warm"], ReplyLength(96, 3)),
        (["1-2 sentences"], ReplyLength(64, 2)),
        (["a sentence or two"], ReplyLength(64, 2)),
        (["under 280 characters"], ReplyLength(70)),
        (["at most 50 words"], ReplyLength(70)),
        (["keep it brief"], ReplyLength(96)),
        (["two sentences, short"], ReplyLength(64, 2)),  # the number says more than "short"
        (["in a few sentences", "be warm and direct"], ReplyLength(DEFAULT_MAX_TOKENS)),
        ([], ReplyLength(DEFAULT_MAX_TOKENS)),
    ],
)
def test_the_length_follows_the_style(style: list[str], expected: ReplyLength) -> None:
    assert reply_length(style) == expected
