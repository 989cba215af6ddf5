"""A character's knowledge into chunks for any memory store: overlapped, deduplicated by content
hash, re-ingested only when a file changes. Files are streamed, never read whole; binary or
unreadable files are skipped with a warning that names them.

A store takes the chunks through a :class:`KnowledgeSink`; this module embeds them and keeps
the manifest (what each source gave), so every store ingests the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aigent.interfaces import Ingested
from aigent.memory import run_sync
from aigent.paths import allowed_roots, outside

if TYPE_CHECKING:
    from aigent.interfaces import Embedder, PluginContext

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".text", ""}
CHUNK_CHARS = 800
OVERLAP_CHARS = 150
READ_BLOCK = 64 * 1024
BATCH = 64


class KnowledgeSink(Protocol):
    """Where a store keeps knowledge chunks; ``shared`` chunks are seen by every agent of the
    store (``{"path": ..., "shared": true}`` in the character)."""

    def add_chunks(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: Sequence[Sequence[float]],
        source: str,
        shared: bool,
    ) -> None:
        """Add or replace chunks by id (an id is the hash of the text)."""

    def delete_chunks(self, ids: Sequence[str], shared: bool) -> None: ...


@dataclass
class Manifest:
    """What was ingested from each source: its fingerprint and the chunk ids it gave."""

    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls(path, json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.files, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash leaves the old manifest or the new one


def chunks(
    blocks: Iterator[str], size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
) -> Iterator[str]:
    """Chunks of about ``size`` characters overlapping by ``overlap``, cut at a paragraph,
    sentence or word boundary where one is near, from a stream of text blocks."""
    buffer = ""
    for block in blocks:
        buffer += block
        while len(buffer) >= size + overlap:
            cut = _boundary(buffer, size)
            yield buffer[:cut].strip()
            buffer = buffer[max(cut - overlap, 1) :]
    if buffer.strip():
        yield buffer.strip()


def _boundary(text: str, size: int) -> int:
    for mark in ("\n\n", ". ", "\n", " "):
        at = text.rfind(mark, size // 2, size)
        if at != -1:
            return at + len(mark)
    return size


def read_blocks(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8") as f:
        while block := f.read(READ_BLOCK):
            yield block


def looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return b"\0" in f.read(8192)


class KnowledgeIngester:
    """Brings a store's knowledge up to date with the character. Synchronous: stores run it in
    a thread (it reads files and embeds)."""

    def __init__(
        self, ctx: PluginContext, sink: KnowledgeSink, embedder: Embedder, manifest: Path
    ) -> None:
        self.ctx = ctx
        self.sink = sink
        self.embedder = embedder
        self.manifest = Manifest.load(manifest)
        self.base = (ctx.character.source.parent if ctx.character.source else Path.cwd()).resolve()
        self.roots = allowed_roots(self.base, ctx.character.allow_paths)
        self.uses_shared = any(getattr(e, "shared", False) for e in ctx.character.knowledge)

    def sources(self) -> Iterator[tuple[str, Path | str, bool]]:
        """(key, file or inline text, shared) for every knowledge entry."""
        for entry in self.ctx.character.knowledge:
            if isinstance(entry, str):
                yield "text:" + hashlib.sha256(entry.encode()).hexdigest()[:16], entry, False
            elif hasattr(entry, "path"):
                path = (self.base / entry.path).resolve()
                yield str(path), path, entry.shared
            else:
                root = (self.base / entry.directory).resolve()
                if not root.is_dir():
                    self.ctx.log.warning("knowledge directory not found: %s", root)
                    continue
                for path in sorted(root.rglob("*")):
                    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
                        yield str(path), path, entry.shared

    def ingest(self) -> Ingested:
        report = Ingested()
        seen: set[str] = set()
        for key, source, shared in self.sources():
            seen.add(key)
            if isinstance(source, Path):
                fingerprint = self._fingerprint(source, report)
                if fingerprint is None:
                    continue
            else:
                fingerprint = {"text": key}
            old = self.manifest.files.get(key)
            if old and old.get("fingerprint") == fingerprint:
                report.unchanged += 1
                continue
            try:
                ids = self._add(key, source, shared)
            except (OSError, UnicodeDecodeError) as exc:
                self._skip(report, key, f"cannot be read as UTF-8 text ({exc})")
                continue
            if old:
                report.files_changed.append(key)
                report.removed += self._remove(key, old, keep=set(ids))
            report.added += len(ids)
            self.manifest.files[key] = {"fingerprint": fingerprint, "ids": ids, "shared": shared}
            self.manifest.save()
        for key in set(self.manifest.files) - seen:  # entries removed from the character
            old = self.manifest.files.pop(key)
            report.removed += self._remove(key, old, keep=set())
            self.manifest.save()
        return report

    def _fingerprint(self, path: Path, report: Ingested) -> dict[str, Any] | None:
        problem = self._not_allowed(path)
        if problem is not None:
            self._skip(report, str(path), problem)
            return None
        try:
            stat = path.stat()
            if looks_binary(path):
                self._skip(report, str(path), "is binary, not text")
                return None
        except OSError as exc:
            self._skip(report, str(path), f"cannot be read ({exc.strerror or exc})")
            return None
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _not_allowed(self, path: Path) -> str | None:
        """Knowledge comes from the character's folder, and never from a dotfile (a ``.env``,
        a key), unless the operator or the file allows that path (``allow_paths``)."""
        problem = outside(path, self.roots)
        if problem is not None:
            return problem
        resolved = path.resolve()
        if not resolved.is_relative_to(self.base):
            return None  # outside the folder, so inside a root the operator or file allowed
        hidden = any(part.startswith(".") for part in resolved.relative_to(self.base).parts)
        explicitly = any(resolved.is_relative_to(root) for root in self.roots[1:])
        if hidden and not explicitly:
            return (
                "is a dotfile or inside a dot folder (a .env, a key?), so it is not read as "
                "knowledge; to read it anyway, add it to the character's allow_paths"
            )
        return None

    def _skip(self, report: Ingested, name: str, why: str) -> None:
        report.skipped.append(name)
        self.ctx.log.warning("knowledge file skipped: %s %s", name, why)

    def _add(self, key: str, source: Path | str, shared: bool) -> list[str]:
        blocks = read_blocks(source) if isinstance(source, Path) else iter([source])
        ids: list[str] = []
        batch: list[tuple[str, str]] = []
        for text in chunks(blocks):
            chunk_id = hashlib.sha256(text.encode()).hexdigest()[:32]
            if chunk_id in ids:
                continue  # the same text twice in one source is stored once
            ids.append(chunk_id)
            batch.append((chunk_id, text))
            if len(batch) >= BATCH:
                self._flush(batch, key, shared)
        self._flush(batch, key, shared)
        return ids

    def _flush(self, batch: list[tuple[str, str]], key: str, shared: bool) -> None:
        if batch:
            texts = [t for _, t in batch]
            vectors = run_sync(self.embedder.embed(texts))
            self.sink.add_chunks([i for i, _ in batch], texts, vectors, key, shared)
            batch.clear()

    def _remove(self, key: str, old: dict[str, Any], keep: set[str]) -> int:
        # A chunk is stored once however many sources hold it: keep those still referenced.
        referenced = {
            i
            for other, entry in self.manifest.files.items()
            if other != key
            for i in entry.get("ids", [])
        }
        gone = [i for i in old.get("ids", []) if i not in keep and i not in referenced]
        if gone:
            self.sink.delete_chunks(gone, bool(old.get("shared")))
        return len(gone)

    def forget(self) -> None:
        self.manifest.files.clear()
        self.manifest.save()
