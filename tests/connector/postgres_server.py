"""A throwaway PostgreSQL server for tests and benchmarks: Debian's server binaries, a data
directory in /tmp, TCP on a free loopback port with password (SCRAM) authentication.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user that
Debian's package creates (or ``nobody``), in a directory handed over to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class NoPostgres(RuntimeError):
    """The server binaries are not installed here."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str
    dbname: str = "postgres"

    def url(self, password: str | None = None, port: int | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@{self.host}:{port or self.port}/{self.dbname}"


def bindir() -> Path:
    """The newest installed server's bin directory; :class:`NoPostgres` if there is none."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).parent
    raise NoPostgres(
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
        "apt-get install postgresql (CI does this in .ci/run)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_as() -> pwd.struct_passwd | None:
    """Whom to run the server as: ourselves, unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise NoPostgres("running as root and there is no postgres (or nobody) user to run the server")


@contextlib.contextmanager
def throwaway_postgres(settings: dict[str, str] | None = None) -> Iterator[Server]:
    """Start a server, yield how to reach it, stop it and delete its data."""
    bin_ = bindir()
    owner = _run_as()
    root = Path(tempfile.mkdtemp(prefix="aigent-pg-"))
    password = secrets.token_hex(12)
    server = Server("127.0.0.1", _free_port(), "aigent", password)

    def run(*args: str | Path) -> None:
        command = [str(a) for a in args]
        if owner is not None:
            command = ["runuser", "-u", owner.pw_name, "--", *command]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed:\n{done.stdout}{done.stderr}\n{tail}")

    try:
        (root / "pw").write_text(password + "\n")
        if owner is not None:
            for path in (root, root / "pw"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        run(bin_ / "initdb", "-D", root / "data", "-U", server.user, "--pwfile", root / "pw",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
            "--no-sync")  # fmt: skip
        options = {
            "listen_addresses": server.host,
            "port": str(server.port),
            "unix_socket_directories": str(root),
            **(settings or {}),
        }
        flags = " ".join(f"-c {key}={value}" for key, value in options.items())
        run(bin_ / "pg_ctl", "-D", root / "data", "-l", root / "server.log", "-o", flags,
            "-w", "-t", "60", "start")  # fmt: skip
        try:
            yield server
        finally:
            run(bin_ / "pg_ctl", "-D", root / "data", "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
