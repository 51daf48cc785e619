"""scripts/system_packages.sh (run by `make run` / `make cli`): installed packages are seen, apt-get runs only
for missing ones, with fake fc-list / ldconfig / apt-get on PATH (nothing is installed for real)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "system_packages.sh"
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc: Noto Sans CJK SC:style=Regular"
XCB_CURSOR = "\tlibxcb-cursor.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libxcb-cursor.so.0"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _run(tmp_path: Path, font_line: str, lib_line: str) -> list[str]:
    """Run the script with listings of 20,000 lines (the match near the top, as on a real system with many
    fonts: the lister is still writing when grep could stop); returns the apt-get calls it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    filler = tmp_path / "filler.txt"
    filler.write_text("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf: DejaVu Sans:style=Book\n" * 20_000)
    calls = tmp_path / "apt-calls.txt"
    _fake(bin_dir, "fc-list", f"echo '{font_line}'\nexec cat '{filler}'")
    _fake(bin_dir, "ldconfig", f"echo '{lib_line}'\nexec cat '{filler}'")
    _fake(bin_dir, "apt-get", f"echo \"$*\" >> '{calls}'")
    _fake(bin_dir, "id", "echo 0")  # as root: no sudo, so the fake apt-get is the one called
    for tool in ("bash", "cat", "grep"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    result = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_installed_font_and_libraries_are_seen_in_long_listings(tmp_path):
    assert _run(tmp_path, CJK_FONT, XCB_CURSOR) == []  # before the fix: apt-get update + install, every start


@pytest.mark.parametrize("missing", ["font", "libs"])
def test_a_missing_package_is_installed(tmp_path, missing):
    calls = _run(tmp_path, "x" if missing == "font" else CJK_FONT, "x" if missing == "libs" else XCB_CURSOR)
    assert len(calls) == 2 and calls[0] == "update -qq"
    assert ("fonts-noto-cjk" in calls[1]) == (missing == "font")
    assert ("libxcb-cursor0" in calls[1]) == (missing == "libs")
