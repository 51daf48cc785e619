#!/usr/bin/env bash
# Installs (best effort, apt-get only) the system packages a real window needs when they are missing: a CJK
# font (Chinese text) and libxcb-cursor0 and friends for Qt's xcb platform. Quiet and quick when all are there.
set -euo pipefail
# Each listing is read whole before it is searched: `lister | grep -q` under pipefail fails with 141 whenever
# grep stops at an early match and the lister gets SIGPIPE, which made every start look like a missing font.
fonts=$(fc-list 2>/dev/null || true)
libs=$(ldconfig -p 2>/dev/null || true)
need=()
grep -qiE "noto sans cjk|wenquanyi|wqy" <<<"$fonts" || need+=(fonts-noto-cjk)
grep -q "libxcb-cursor.so.0" <<<"$libs" \
  || need+=(libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-image0
            libxcb-render-util0 libegl1 libgl1)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if { $sudo apt-get update -qq \
       && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1; then
    echo "installed system packages: ${need[*]}"
  else
    echo "note: could not install ${need[*]} (no root?); install them with your package manager" >&2
  fi
fi
exit 0
