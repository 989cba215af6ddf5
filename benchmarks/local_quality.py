"""Is the local model's first chat worth having? 20 messages to Eliza, each reply scored.

Run: uv run --all-packages python benchmarks/local_quality.py [MODEL[@CHAT_FORMAT] ...]
     [--rounds N] [--show]

MODEL is what a character file names: ``local`` (the default) or a GGUF path; ``@gemma`` gives
a llama.cpp chat format for a file that carries no chat template. Each reply goes through the
whole agent (Eliza's real system prompt, style and history) with memory off, so the figures
include the prompt building but not recall. Scores, per reply:

- not empty;
- no repeated sentence or line (split here on its own, not by the plugin's guard);
- in persona: does not call itself another assistant or model, nor write the user's turn;
- no echo: does not recite its instructions (six words in a row from the system prompt, the
  examples left out) nor repeat the user's message back;
- within the style's length: at most three sentences (Eliza: "one to three short sentences");
- facts: the expected word is in the answer, for the questions that have one.

Seconds per reply are wall time on this machine (CPU only), shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aigent import Agent, load_character
from aigent.prompt import system_prompt

ROOT = Path(__file__).resolve().parents[1]
MAX_SENTENCES = 3

# (room, message, a word the answer must hold or None). A shared room is a follow-up.
PROMPTS: list[tuple[str, str, str | None]] = [
    ("r1", "Hi Eliza, what can you help me with?", None),
    ("r2", "hi, who are you?", "eliza"),
    ("r3", "Hello!", None),
    ("r4", "Good morning Eliza, how are you today?", None),
    ("r5", "What can you do for me?", None),
    ("r6", "Can you help me write a short poem about the sea?", None),
    ("r7", "What is Interledger?", None),
    ("r8", "What is the capital of France?", "paris"),
    ("r8", "And what is the capital of Italy?", "rome"),
    ("r9", "How many days are there in a week?", "seven|7"),
    ("r10", "What colour is the sky on a clear day?", "blue"),
    ("r11", "Why are you called Eliza?", None),
    ("r12", "Are you ChatGPT?", None),
    ("r13", "Who made you?", None),
    ("r14", "Tell me about open source.", None),
    ("r15", "Can agents pay each other?", None),
    ("r16", "I'm feeling a bit stressed about work.", None),
    ("r16", "Any tips to relax?", None),
    ("r17", "Give me one reason to learn Python.", None),
    ("r18", "Thanks, bye!", None),
]

_OTHER_SELF = re.compile(
    r"\b(i am|i'm|as) (an? )?(ai language model|large language model|language model|"
    r"ai assistant|chatgpt|gpt|smollm|gemma|llama|claude|qwen|assistant developed)|"
    r"\b(created|developed|trained|made) by (openai|google|hugging ?face|meta|anthropic)\b",
    re.IGNORECASE,
)
_USER_TURN = re.compile(r"(^|\n)\s*(user|human|you)\s*:", re.IGNORECASE)
_UNITS = re.compile(r"(?<=[.!?])\s+|\n+")


def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def units(text: str) -> list[str]:
    """Sentences and lines, normalised; an independent split from the plugin's guard."""
    return [n for part in _UNITS.split(text) if (n := _norm(part))]


def grams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = _norm(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echoes(reply: str, message: str, instructions: set[tuple[str, ...]]) -> bool:
    said, asked = _norm(reply), _norm(message)
    return bool(grams(reply) & instructions) or (asked.count(" ") >= 2 and asked in said)


@dataclass
class Score:
    replies: int = 0
    empty: int = 0
    repeated: int = 0
    off_persona: int = 0
    echo: int = 0
    clean: int = 0
    too_long: int = 0
    facts: int = 0
    facts_right: int = 0
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    cut_at_repeat: int = 0

    def add(
        self, text: str, expect: str | None, seconds: float, tokens: int, echo: bool = False
    ) -> list[str]:
        flags = []
        self.replies += 1
        self.seconds.append(seconds)
        self.tokens.append(tokens)
        found = units(text)
        if not found:
            self.empty += 1
            flags.append("empty")
        if len(found) != len(set(found)):
            self.repeated += 1
            flags.append("repeat")
        if _OTHER_SELF.search(text) or _USER_TURN.search(text):
            self.off_persona += 1
            flags.append("persona")
        if echo:
            self.echo += 1
            flags.append("echo")
        if sum(1 for u in found if " " in u) > MAX_SENTENCES:
            self.too_long += 1
            flags.append("long")
        if expect is not None:
            self.facts += 1
            if re.search(rf"\b({expect})\b", text, re.IGNORECASE):
                self.facts_right += 1
            else:
                flags.append("wrong")
        self.clean += not flags
        return flags


class CutCounter(logging.Handler):
    """Counts the replies the plugin's guard cut at a repeat: the loops the penalties let by."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.cuts = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "repeat" in record.getMessage():
            self.cuts += 1


async def run(model: str, settings: dict[str, object], rounds: int, show: bool) -> Score:
    data = json.loads((ROOT / "characters" / "eliza.json").read_text())
    persona = load_character(ROOT / "characters" / "eliza.json")
    # Her example answers are hers to reuse; the rest of the prompt is not for reciting.
    instructions = grams(system_prompt(persona.model_copy(update={"message_examples": []})))
    score = Score()
    counter = CutCounter()
    logger = logging.getLogger("aigent.local")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    with tempfile.TemporaryDirectory() as tmp:
        data.update(
            memory={"enabled": False},
            data_dir=str(Path(tmp) / "data"),
            models={"large": model},
            settings={"local": settings},
        )
        path = Path(tmp) / "eliza.json"
        path.write_text(json.dumps(data))
        async with Agent.from_file(path) as agent:
            for round_ in range(rounds):
                for room, text, expect in PROMPTS:
                    start = time.perf_counter()
                    reply = await agent.chat(text, room=f"{room}-{round_}")
                    seconds = time.perf_counter() - start
                    echo = echoes(reply.text, text, instructions)
                    tokens = reply.usage.completion_tokens
                    flags = score.add(reply.text, expect, seconds, tokens, echo)
                    if show:
                        mark = ",".join(flags) or "ok"
                        print(f"  [{mark}] {seconds:4.1f}s {text!r} -> {reply.text!r}")
    logger.removeHandler(counter)
    score.cut_at_repeat = counter.cuts
    return score


def table(results: dict[str, Score]) -> str:
    names = list(results)
    rows = [
        ("replies", lambda s: str(s.replies)),
        ("not empty", lambda s: f"{s.replies - s.empty}/{s.replies}"),
        ("no repeated line", lambda s: f"{s.replies - s.repeated}/{s.replies}"),
        ("in persona", lambda s: f"{s.replies - s.off_persona}/{s.replies}"),
        ("no echo of prompt or message", lambda s: f"{s.replies - s.echo}/{s.replies}"),
        (f"<= {MAX_SENTENCES} sentences", lambda s: f"{s.replies - s.too_long}/{s.replies}"),
        ("loops cut by the guard", lambda s: f"{s.cut_at_repeat}/{s.replies}"),
        ("facts right", lambda s: f"{s.facts_right}/{s.facts}"),
        ("replies with no flag", lambda s: f"{s.clean}/{s.replies}"),
        ("s per reply (median)", lambda s: f"{statistics.median(s.seconds):.2f}"),
        ("s per reply (max)", lambda s: f"{max(s.seconds):.2f}"),
        ("tokens per reply (median)", lambda s: f"{statistics.median(s.tokens):.0f}"),
    ]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=["local"], help="MODEL[@CHAT_FORMAT]")
    parser.add_argument("--rounds", type=int, default=1, help="times through the 20 messages")
    parser.add_argument("--show", action="store_true", help="print every reply and its flags")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a settings.local value for every model, e.g. repeat_penalty=1.0",
    )  # fmt: skip
    args = parser.parse_args()
    common = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    results: dict[str, Score] = {}
    for spec in args.models:
        model, _, chat_format = spec.partition("@")
        if model.endswith(".gguf") and not model.startswith("local/"):
            model = "local/" + str(Path(model).resolve())
        settings = {**common, **({"chat_format": chat_format} if chat_format else {})}
        print(f"{spec} {settings or ''}:", file=sys.stderr)
        results[Path(model).name] = asyncio.run(run(model, settings, args.rounds, args.show))
    print(table(results))


if __name__ == "__main__":
    main()
