#!/bin/sh
# Re-extract the UI strings of gui/ into the Qt Linguist files and compile them (.ts -> .qm).
# Translate new strings in gui/assets/i18n/*.ts (e.g. with pyside6-linguist), then run this again.
set -e
cd "$(dirname "$0")/.."
BIN=.venv/bin
$BIN/pyside6-lupdate -no-obsolete gui/*.py -ts gui/assets/i18n/baichuan_chat_zh_CN.ts
$BIN/pyside6-lupdate -no-obsolete -pluralonly -target-language en gui/*.py -ts gui/assets/i18n/baichuan_chat_en.ts
for ts in gui/assets/i18n/*.ts; do
    $BIN/pyside6-lrelease "$ts" -qm "${ts%.ts}.qm"
done
