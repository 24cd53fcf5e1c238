"""Run ``waystation`` as a user does: a real subprocess with stdout a pipe, or on a pseudo-terminal
of a given width (``pty``), and read what it printed."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAYSTATION = [sys.executable, "-m", "waystation"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b\]8;[^\x1b]*\x1b\\")


def env_for(plugins: str = "longnames", **extra: str) -> dict[str, str]:
    """A subprocess environment with only ``plugins`` (modules of this folder) as plugins."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WAYSTATION_", "FAKEVENDOR_")) and k not in ("COLUMNS", "LINES", "NO_COLOR")}
    # the test's own suppression ledger (set by the pytest plugin) is kept, so a CLI run never writes
    # a ledger into the working directory that later tests would read
    for keep in ("WAYSTATION_SUPPRESS_LEDGER", "WAYSTATION_SUPPRESS_SECRET"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    env["PYTHONPATH"] = str(HERE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["WAYSTATION_EXTRA_PLUGINS"] = plugins
    env["WAYSTATION_LOAD_PLUGINS"] = ""
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


@dataclass
class Ran:
    """What a command printed and how it ended."""

    code: int
    out: str
    err: str = ""

    @property
    def text(self) -> str:
        """stdout without terminal escape sequences."""
        return ANSI.sub("", self.out).replace("\r\n", "\n")


def piped(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60) -> Ran:
    """``waystation ARGS`` with stdout and stderr pipes."""
    res = subprocess.run([*WAYSTATION, *args], env=env or env_for(), capture_output=True, text=True,
                         timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    return Ran(res.returncode, res.stdout, res.stderr)


def on_terminal(*args: str, columns: int, env: dict[str, str] | None = None, cwd: Path | None = None,
                timeout: float = 60) -> Ran:
    """``waystation ARGS`` with stdout (and stderr) on a pseudo-terminal ``columns`` wide."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([*WAYSTATION, *args], env=env or env_for(), stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"waystation {' '.join(args)} did not finish in {timeout}s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                # drain what is left
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                break
    finally:
        os.close(master)
    code = proc.wait(timeout=10)
    return Ran(code, b"".join(chunks).decode("utf-8", "replace"))
