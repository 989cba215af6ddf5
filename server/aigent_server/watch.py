"""Directories of character files, watched by polling: a new file is served, a changed one
reloaded (its agent restarts on it if it ran), a removed one's agent stopped and forgotten.

Polling (every second by default) rather than inotify: it works the same on every platform and
on network or container mounts, and a scan of a folder of character files costs little."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aigent import AigentError
from aigent_server.fleet import Fleet, FleetError, Hosted
from aigent_server.registry import OPERATOR

log = logging.getLogger("aigent.server")

Stamp = tuple[int, int]  # (mtime_ns, size): a file that changes changes one of them


def scan(folders: list[Path], suffixes: tuple[str, ...]) -> dict[Path, Stamp]:
    found: dict[Path, Stamp] = {}
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("cannot read watched folder %s: %s", folder, exc)
            continue
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(suffixes):
                continue  # editors' swap and temporary files are dotfiles
            try:
                stat = entry.stat()
            except OSError:
                continue  # removed while scanned: the next scan says so
            if entry.is_file():
                found[Path(entry.path).resolve()] = (stat.st_mtime_ns, stat.st_size)
    return found


class Watcher:
    def __init__(
        self, fleet: Fleet, folders: list[Path], suffixes: tuple[str, ...], interval: float
    ) -> None:
        self.fleet = fleet
        self.folders = [f.resolve() for f in folders]
        self.suffixes = suffixes
        self.interval = interval
        self.seen: dict[Path, Stamp] = {}

    async def run(self) -> None:
        """Take the folders as they are (their files are already served), then follow them."""
        self.seen = await asyncio.to_thread(scan, self.folders, self.suffixes)
        for hosted in list(self.fleet.hosted.values()):
            # Removed while the server was down: the registry still names the file.
            if self._watched(hosted) and hosted.entry.source not in self.seen:
                await self._removed(hosted.entry.source)
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except Exception:  # one bad step must not end the watching
                log.exception("watching %s failed; trying again", self.folders)

    async def step(self) -> None:
        now = await asyncio.to_thread(scan, self.folders, self.suffixes)
        for path in self.seen.keys() - now.keys():
            await self._removed(path)
        for path, stamp in now.items():
            if self.seen.get(path) != stamp:
                await self._changed(path)
        self.seen = now

    def _watched(self, hosted: Hosted) -> bool:
        entry = hosted.entry
        return (
            not entry.uploaded and entry.owner == OPERATOR and entry.source.parent in self.folders
        )

    def _serving(self, path: Path) -> Hosted | None:
        for hosted in self.fleet.hosted.values():
            if self._watched(hosted) and hosted.entry.source == path:
                return hosted
        return None

    async def _removed(self, path: Path) -> None:
        hosted = self._serving(path)
        if hosted is not None:
            log.info("%s removed: agent %s stopped and forgotten", path, hosted.entry.name)
            await self.fleet.remove(hosted)

    async def _changed(self, path: Path) -> None:
        hosted = self._serving(path)
        try:
            if hosted is not None:
                try:
                    await self.fleet.replace(hosted, path)
                    log.info("%s changed: agent %s reloaded", path, hosted.entry.name)
                    return
                except FleetError:
                    # The file names another agent now: the old one goes, the new one comes.
                    await self.fleet.remove(hosted)
            added = await self.fleet.add(path, OPERATOR, uploaded=False)
            log.info("%s: serving agent %s", path, added.entry.name)
            if added.entry.desired == "running":
                await self.fleet.start(added, remember=False)
        except (AigentError, FleetError) as exc:
            # Kept in `seen`: a broken file is reported once, and again when it changes.
            log.warning("%s not served: %s", path, exc)
