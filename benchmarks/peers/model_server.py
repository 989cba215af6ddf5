"""The model both sides talk to: the tests' OpenAI wire-format stand-in, answering at once.

elizaOS's message loop asks the model for an XML ``<response>`` that echoes three UUID codes
from the prompt (its check that the prompt was not truncated) and retries, then gives up, when
they are missing. A real model follows those instructions, so the stand-in does too: a prompt
in that shape gets the XML answer a compliant model would give (one plain REPLY, no extra
providers), which keeps elizaOS on its one-call path. Every other prompt gets the fixture's
usual ``echo: <last user text>``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.openai_server import Behaviour, OpenAIServer, reply  # noqa: E402

_CODE = re.compile(r"^(initial|middle|end) code: (\S+)$", re.MULTILINE)
_EXAMPLE = re.compile(r"<response>(.*?)</response>", re.DOTALL)
_FIELD = re.compile(r"<(\w+)>([^<]*)</\1>")
_ANSWERS = {"thought": "A greeting; reply briefly.", "actions": "REPLY", "providers": "",
            "params": "", "text": "Hello from the stand-in.", "simple": "true"}  # fmt: skip


class ModelServer(OpenAIServer):
    """The stand-in, plus elizaOS's XML response contract; counts requests per path."""

    def __init__(self) -> None:
        super().__init__()
        # socketserver listens with a backlog of 5: ten clients connecting at once overflow it
        # and a dropped SYN costs a one-second retransmit, which would be timed as latency.
        self._server.socket.listen(128)

    def _next(self, body: dict[str, Any]) -> Behaviour:
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content") or "") if messages else ""
        if "<response>" in prompt and "initial code:" in prompt:
            return reply(xml_answer(prompt))
        return super()._next(body)

    def counts(self) -> dict[str, int]:
        """Requests received so far, by last path segment (``completions``, ``embeddings``)."""
        out: dict[str, int] = {}
        for request in list(self.requests):
            kind = request.path.rstrip("/").rsplit("/", 1)[-1]
            out[kind] = out.get(kind, 0) + 1
        return out


def xml_answer(prompt: str) -> str:
    """What a model that follows elizaOS's output instructions answers to ``prompt``."""
    codes = {kind: code for kind, code in _CODE.findall(prompt)}
    # The format elizaOS checks is the one in the last <output> section (its template has
    # another, older example before it).
    example = _EXAMPLE.search(prompt, prompt.rfind("<output>") + 1)
    fields = _FIELD.findall(example.group(1)) if example else []
    lines = ["<response>"]
    for name, description in fields:
        if name.endswith(("initial_code", "middle_code", "end_code")):
            value = codes.get(name.split("_")[-2], "")
        elif description.startswith("output exactly: "):
            value = description.removeprefix("output exactly: ")
        else:
            value = _ANSWERS.get(name, "")
        lines.append(f"  <{name}>{value}</{name}>")
    lines.append("</response>")
    return "\n".join(lines)
