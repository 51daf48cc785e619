"""Entry point of the desktop app: parses --model/--device/--dtype, runs Qt with qasync, opens the window."""
from __future__ import annotations

import argparse
import asyncio
import ctypes.util
import os
import sys
import traceback

from PySide6.QtCore import QCoreApplication

from inference.torch_guard import startup_torch_problem

from .logging_setup import logger
from inference.choices import DEVICES, DTYPES

translate = QCoreApplication.translate  # lupdate extracts translate("MainWindow", ...) calls


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from inference.env import variables_help
    from inference.version import __version__

    parser = argparse.ArgumentParser(prog="baichuan-chat", description="Desktop chat with Baichuan2 models.",
                                     epilog=variables_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--install-desktop-entry", action="store_true",
                        help="add the app to the desktop's launcher (~/.local/share/applications and the icon "
                             "theme) and exit")
    parser.add_argument("--model", metavar="DIR", help="Baichuan2 model folder (default: the last one opened, "
                                                       "else the small demo model)")
    parser.add_argument("--device", choices=DEVICES, help="where the model runs (default: auto)")
    parser.add_argument("--dtype", choices=DTYPES, help="weight dtype (default: auto)")
    parser.add_argument("--max-seq-len", type=int, metavar="N", help="MAX_SEQ_LEN (default: the model's maximum)")
    parser.add_argument("--language", choices=("system", "en", "zh_CN"), help="UI language (default: remembered)")
    parser.add_argument("--theme", choices=("system", "light", "dark"), help="colour theme (default: remembered)")
    return parser.parse_args(argv)


def platform_problem() -> str | None:
    """Why Qt's xcb platform would abort on this Linux desktop, in one sentence (None when it should work)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return ("no display found: run the app in a desktop session, under `xvfb-run`, "
                "or with QT_QPA_PLATFORM=offscreen")
    xcb = os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if xcb and not ctypes.util.find_library("xcb-cursor"):
        return ("Qt's xcb platform needs libxcb-cursor0: install it with `sudo apt-get install libxcb-cursor0` "
                "(Debian/Ubuntu) or `sudo dnf install xcb-util-cursor` (Fedora)")
    return None


def _excepthook(window_ref: list):
    def hook(kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb)
        logger.error("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        window = window_ref[0] if window_ref else None
        if window is not None and issubclass(kind, Exception):
            window.show_error(translate("MainWindow", "Something went wrong"),
                              f"{kind.__name__}: {value}".splitlines()[0])
    return hook


async def run_window(args: argparse.Namespace) -> int:
    """Open the window (before the model loads), start the load, and wait until the app quits."""
    from PySide6.QtWidgets import QApplication

    from . import i18n, theme
    from .app_identity import exit_after, log_startup
    from .main_window import MainWindow
    from .paths import data_dir, history_path
    from .single_instance import InstanceGuard, raise_window
    from .store import STATE_LANGUAGE, STATE_THEME, Store

    app = QApplication.instance()
    guard = InstanceGuard(data_dir(), app)
    held = guard.acquire()
    if held == "taken":  # never open the history another instance is writing
        if guard.ask_owner_to_raise():
            print(f"baichuan-chat is already running on {guard.folder}; raised its window.", flush=True)
            return 0
        print(f"error: another baichuan-chat holds {guard.folder} (lock {guard.folder / 'instance.lock'}) and did "
              "not answer; close it first", file=sys.stderr, flush=True)
        return 1
    if held == "unlocked":
        print(f"warning: cannot lock {guard.folder}; a second window on it would not be noticed", file=sys.stderr)
    store, warning = Store.open_or_fallback(history_path())
    language = args.language or store.get_state(STATE_LANGUAGE) or "system"
    translated = i18n.install(i18n.resolve(language))
    theme_name = theme.resolve(args.theme or store.get_state(STATE_THEME))
    dark = theme.apply(app, theme_name)
    log_startup(i18n.resolve(language), translated, theme_name, theme.applied(theme_name))
    window = MainWindow(store)
    window.chat.set_dark(dark)
    window_ref = [window]
    previous_hook, sys.excepthook = sys.excepthook, _excepthook(window_ref)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    guard.raise_requested.connect(lambda: raise_window(window))
    window.show()
    exit_after(window)
    if warning:
        window.show_error(translate("MainWindow", "History"), warning)
    if store.recovered_messages:
        recovered = translate("MainWindow", "%n interrupted answer(s) recovered from the last session", "",
                              store.recovered_messages)
        window.statusBar().showMessage(recovered, 10000)
    window.start(args.model, explicit=args.model is not None, device=args.device, dtype=args.dtype,
                 max_seq_len=args.max_seq_len)
    await closed.wait()
    sys.excepthook = previous_hook
    window_ref.clear()
    store.close()
    guard.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`baichuan-chat` / `python -m gui`."""
    args = parse_args(argv)
    if args.install_desktop_entry:
        from .app_identity import install_desktop_entry

        return install_desktop_entry()
    problem = platform_problem() or startup_torch_problem()  # a broken torch_npu: say so before Qt starts
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    import qasync
    from PySide6.QtWidgets import QApplication

    from . import logging_setup, theme
    from .app_identity import identify

    logging_setup.setup()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    identify(app)
    app.setApplicationName("Baichuan Chat")
    app.setOrganizationName("baichuan-chat")
    app.setQuitOnLastWindowClosed(False)  # the async main decides when to stop, after cleaning up
    theme.apply_fonts(app)
    return qasync.run(run_window(args))
