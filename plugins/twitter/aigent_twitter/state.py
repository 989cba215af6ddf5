"""What the X client must not forget across restarts: the last mention it saw, what it
replied to, what it posted (to never post the same text twice) and this month's post count."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEEP = 5000  # remembered post hashes and replied-to ids (oldest dropped first)


@dataclass
class State:
    path: Path
    last_mention_id: str | None = None
    replied_to: list[str] = field(default_factory=list)
    posted_hashes: list[str] = field(default_factory=list)
    replies_per_conversation: dict[str, int] = field(default_factory=dict)
    month: str = ""
    posts_this_month: int = 0
    last_post_at: float = 0.0
    posts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return cls(path)
        data.pop("path", None)
        return cls(path, **data)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("path")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash keeps the old state or the new one

    @staticmethod
    def fingerprint(text: str) -> str:
        return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:24]

    def already_posted(self, text: str) -> bool:
        return self.fingerprint(text) in self.posted_hashes

    def record_post(
        self, text: str, post_id: str, month: str, receipts: dict[str, Any], count: int = 1
    ) -> None:
        if month != self.month:
            self.month, self.posts_this_month = month, 0
        self.posts_this_month += count
        self.posted_hashes = [*self.posted_hashes, self.fingerprint(text)][-KEEP:]
        self.posts = [*self.posts, {"id": post_id, "text": text, "receipts": receipts}][-KEEP:]

    def record_reply(self, post_id: str, conversation: str) -> None:
        self.replied_to = [*self.replied_to, post_id][-KEEP:]
        self.replies_per_conversation[conversation] = (
            self.replies_per_conversation.get(conversation, 0) + 1
        )
