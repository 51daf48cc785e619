"""Presets: named settings (system prompt, sampling, max new tokens); built-ins and the user's own; no Qt.

A preset id is "builtin:<name>" or "user:<name>". Built-ins carry sampling only (applying one keeps the system
prompt); Balanced is the loaded model's generation_config, Precise is greedy, Creative samples widely. The user's
own presets carry every PRESET_KEYS value and live in the history's presets table.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gui.store_schema import StoreError
from inference.modeling.config import GenerationDefaults
from gui.store_types import clean_text, from_json, now_iso, to_json

PRESET_KEYS = ("system_prompt", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p",
               "repetition_penalty")
BUILTIN, USER = "builtin:", "user:"
PRECISE, BALANCED, CREATIVE = "builtin:precise", "builtin:balanced", "builtin:creative"
BUILTINS = (PRECISE, BALANCED, CREATIVE)
STATE_DEFAULT_PRESET = "default_preset"  # app_state key: the preset id new conversations start from
PRESET_KEY = "preset"  # the conversation settings' key naming the preset chosen for it
MAX_NAME = 80
#: Before a model is loaded: Baichuan2's generation_config.json, as inference names it (GenerationDefaults).
FALLBACK_DEFAULTS = {key: getattr(GenerationDefaults, key) for key in
                     ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens")}


def default_settings(model_defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """Conversation settings built from a model's generation defaults (generation_config.json)."""
    base = dict(FALLBACK_DEFAULTS)
    base.update({k: v for k, v in (model_defaults or {}).items() if k in FALLBACK_DEFAULTS})
    base.update({"seed": None, "system_prompt": "", "stream": True})
    return base


def builtin_values(preset_id: str, model_defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """A built-in preset's values, resolved against the loaded model's generation defaults."""
    base = {k: v for k, v in default_settings(model_defaults).items() if k in PRESET_KEYS and k != "system_prompt"}
    if preset_id == PRECISE:
        base.update(do_sample=False)
    elif preset_id == CREATIVE:
        base.update(do_sample=True, temperature=0.9, top_p=0.95, top_k=50)
    return base


def user_name(preset_id: str) -> str:
    return preset_id[len(USER):] if preset_id.startswith(USER) else ""


def check_name(name: str) -> str:
    """A preset name as stored (trimmed, one line); StoreError when it is empty or too long."""
    name = " ".join(clean_text(str(name)).split())
    if not name:
        raise StoreError("A preset needs a name.")
    if len(name) > MAX_NAME:
        raise StoreError(f"A preset name can have at most {MAX_NAME} characters.")
    return name


class PresetTable:
    """Mixed into Store: the user's presets (needs _tx, get_state)."""

    def list_presets(self) -> dict[str, dict[str, Any]]:
        """The user's presets: name -> values, by name."""
        with self._tx("") as conn:
            rows = conn.execute("SELECT name, settings FROM presets ORDER BY name COLLATE NOCASE").fetchall()
        return {name: {k: v for k, v in from_json(values).items() if k in PRESET_KEYS} for name, values in rows}

    def save_preset(self, name: str, settings: Mapping[str, Any]) -> str:
        """Save (or replace) a preset with the PRESET_KEYS values of `settings`; its id."""
        name = check_name(name)
        values = {k: settings[k] for k in PRESET_KEYS if k in settings}
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO presets (name, settings, updated) VALUES (?, ?, ?)",
                         (name, to_json(values, "preset"), now_iso()))
        return USER + name

    def delete_preset(self, name: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM presets WHERE name = ?", (name,)).rowcount == 1

    def preset_values(self, preset_id: str, model_defaults: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The values a preset sets (None when there is no such preset)."""
        if preset_id in BUILTINS:
            return builtin_values(preset_id, model_defaults)
        return self.list_presets().get(user_name(preset_id)) if preset_id.startswith(USER) else None

    def default_preset(self) -> str:
        """The preset new conversations start from (Balanced unless the user chose another that exists)."""
        chosen = self.get_state(STATE_DEFAULT_PRESET)
        if isinstance(chosen, str) and (chosen in BUILTINS or user_name(chosen) in self.list_presets()):
            return chosen
        return BALANCED
