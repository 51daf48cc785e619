"""The chat controller's presets: apply one to the conversation, save / delete / make default, new conversations."""
from __future__ import annotations

from .presets import PRESET_KEY, STATE_DEFAULT_PRESET, default_settings, user_name
from .store import StoreError


class PresetFlow:
    """Mixed into ChatController: needs store, settings_panel, saver, error, _model_defaults, _settings_changed."""

    def _connect_presets(self) -> None:
        picker = self.settings_panel.presets
        picker.chosen.connect(self.apply_preset)
        picker.save_requested.connect(self.save_preset)
        picker.delete_requested.connect(self.delete_preset)
        picker.default_requested.connect(self.make_default_preset)
        self.refresh_presets()

    def refresh_presets(self) -> None:
        self.settings_panel.presets.set_presets(self.store.list_presets(), self.store.default_preset())

    def new_settings(self, keep: dict, preset_id: str | None = None) -> dict:
        """Settings of a conversation that starts now: the model's defaults under the preset (the default one
        unless given); a built-in preset keeps the system prompt shown, streaming always stays."""
        preset_id = preset_id or self.store.default_preset()
        values = self.store.preset_values(preset_id, self._model_defaults())
        if values is None:  # deleted meanwhile
            preset_id = self.store.default_preset()
            values = self.store.preset_values(preset_id, self._model_defaults()) or {}
        return {**default_settings(self._model_defaults()), "system_prompt": keep.get("system_prompt", ""),
                "stream": keep.get("stream", True), **values, PRESET_KEY: preset_id}

    def apply_preset(self, preset_id: str) -> None:
        """Put a preset's values in the panel for this conversation (saved like any edit)."""
        values = self.store.preset_values(preset_id, self._model_defaults())
        if values is None:
            self.refresh_presets()
            return
        fresh = self._fresh_settings
        settings = {**self.settings_panel.settings(), **values, PRESET_KEY: preset_id}
        self.settings_panel.set_settings(settings)
        self._settings_changed(settings)
        self._fresh_settings = fresh  # a preset chosen before the model loads is resolved against it then

    def save_preset(self, name: str) -> None:
        """Save the panel's settings as a preset (replacing one of that name) and choose it here."""
        try:
            preset_id = self.store.save_preset(name, self.settings_panel.settings())
        except StoreError as exc:
            self.error.emit(str(exc))
            return
        self.refresh_presets()
        self.settings_panel.presets.select(preset_id)
        self._settings_changed(self.settings_panel.settings())

    def delete_preset(self, preset_id: str) -> None:
        self.store.delete_preset(user_name(preset_id))
        self.refresh_presets()
        self._settings_changed(self.settings_panel.settings())

    def make_default_preset(self, preset_id: str) -> None:
        """New conversations (Ctrl+N) start from this preset."""
        self.store.set_state(STATE_DEFAULT_PRESET, preset_id)
        self.refresh_presets()
