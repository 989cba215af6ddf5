"""A filter on the streamed reply of a small model: it ends the reply when the model starts a
sentence or line it already wrote (small models loop), or when the reply has as many sentences
as the character's style allows, and drops a speaker label ("Eliza: ...") the model copied from
the examples in its prompt.

Text passes through as it comes, except while the unit being written (a sentence or a line) reads
like the start of one already written: that part is held back until it either turns out to be
new (it is released) or ends as a repeat (it is dropped and generation stops). A sentence copied
from one of the model's earlier replies is dropped too, but the reply goes on: small models copy
their last answer to the next question, and what follows the copy is often new.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A unit this short ("1.", "Hi!", "Ok.") may well recur on purpose: never called a repeat.
MIN_REPEAT_CHARS = 4

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_NOT_WORD = re.compile(r"[^\w]+")


def _norm(text: str) -> str:
    """Case, punctuation and spacing do not make a sentence new."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


class ReplyGuard:
    """Feed it the model's text piece by piece; emit what :meth:`feed` returns and stop generating
    once :attr:`stopped` is true; at the end, emit what :meth:`finish` returns."""

    def __init__(
        self,
        max_sentences: int | None = None,
        speaker: str | None = None,
        earlier: Sequence[str] = (),
    ) -> None:
        """``earlier``: the model's replies before this one in the conversation."""
        self.max_sentences = max_sentences
        self._label = f"{speaker.lower()}:" if speaker else None
        self._lead = ""  # the reply's first characters, while they may be the label
        self.stopped = False
        self.stop_reason: str | None = None  # "repeated sentence" or "sentence limit"
        self._seen: list[str] = []
        self._sentences = 0
        self._unit = ""  # the unit being written, from its first character
        self._held = True  # while true, all of _unit is held back
        self._earlier: list[str] = []
        for reply in earlier:
            reader = ReplyGuard()
            reader.feed(reply + "\n")  # the newline ends its last sentence
            self._earlier += reader._seen
        self._copied = ""  # sentences dropped as copies of an earlier reply
        self._shown = False

    def feed(self, piece: str) -> str:
        if self._label is not None:  # the start of the reply
            self._lead += piece
            lead = self._lead.lstrip()
            if self._label.startswith(lead.lower()):
                return ""  # it may yet be the label
            label, self._label = self._label, None
            piece = lead[len(label) :].lstrip() if lead.lower().startswith(label) else self._lead
        out: list[str] = []
        for char in piece:
            if self.stopped:
                break
            if char.isspace() and (char == "\n" or _SENTENCE_END.search(self._unit)):
                out.append(self._close())
                if self.stopped:
                    break
            self._unit += char
            if self._held and not self._may_repeat(_norm(self._unit)):
                self._held = False
                out.append(self._unit)
            elif not self._held:
                out.append(char)
        shown = "".join(out)
        self._shown = self._shown or bool(shown.strip())
        return shown

    def finish(self) -> str:
        """What is owed at the end: nothing, unless every sentence was a copy of an earlier
        reply; then the copy, since an old answer is better than none. A unit still held is
        the start of a repeat cut short by the length cap or the model's own stop: dropped."""
        if self._held and _norm(self._unit) in self._earlier:
            self._copied, self._unit = self._copied + self._unit, ""
        return "" if self._shown else self._copied.strip()

    def _may_repeat(self, norm: str) -> bool:
        return any(seen.startswith(norm) for seen in (*self._seen, *self._earlier))

    def _close(self) -> str:
        """The unit ended: drop it if it repeats one, else release what was held."""
        norm = _norm(self._unit)
        released = ""
        if self._held:
            if norm in self._seen and len(norm) >= MIN_REPEAT_CHARS:
                self.stopped, self.stop_reason = True, "repeated sentence"
                return ""
            if norm in self._earlier and len(norm) >= MIN_REPEAT_CHARS:
                self._copied += self._unit
                self._seen.append(norm)  # written again in this reply, it is a loop
                self._unit = ""
                return ""
            released = self._unit
        if norm:
            self._seen.append(norm)
            if " " in norm:  # a sentence has two words at least; "1." and "e.g." do not count
                self._sentences += 1
            if self.max_sentences is not None and self._sentences >= self.max_sentences:
                self.stopped, self.stop_reason = True, "sentence limit"
        self._unit, self._held = "", True
        return released
