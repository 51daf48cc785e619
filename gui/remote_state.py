"""What the app remembers about servers: recent remote servers (URL, model, key when the user lets it) and the
local server's port / key / reach; and the local Baichuan2 folder whose tokenizer counts for a served model."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

STATE_RECENT_SERVERS = "recent_servers"  # [{"url", "model", "api_key"?}], newest first
STATE_LAST_REMOTE = "last_remote"  # the server connected to last ({"url", "model", "api_key"?}), or None
STATE_LOCAL_SERVER = "local_server"  # {"port", "api_key", "lan"}
RECENT_SERVER_LIMIT = 10
DEFAULT_PORT = 8000


def add_recent_server(recent, url: str, model: str, api_key: str | None) -> list[dict]:
    """The recent-servers list after connecting (newest first); the key is kept only when given."""
    entry = {"url": url, "model": model}
    if api_key:
        entry["api_key"] = api_key
    kept = [e for e in (recent if isinstance(recent, list) else [])
            if isinstance(e, dict) and isinstance(e.get("url"), str) and e.get("url") != url]
    return ([entry] + kept)[:RECENT_SERVER_LIMIT]


def recent_servers(recent) -> list[dict]:
    """Only well-formed entries of a stored list (the history file may be old or hand-edited)."""
    return [e for e in (recent if isinstance(recent, list) else [])
            if isinstance(e, dict) and isinstance(e.get("url"), str)]


def local_server_settings(saved) -> dict:
    """Port, key and reach of the local server, with defaults for what is missing or malformed."""
    saved = saved if isinstance(saved, dict) else {}
    port = saved.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else DEFAULT_PORT
    key = saved.get("api_key") if isinstance(saved.get("api_key"), str) else ""
    return {"port": port, "api_key": key, "lan": saved.get("lan") is True}


def host_of(url: str) -> str:
    """host:port of a server URL, for 'remote: MODEL at HOST'."""
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def tokenizer_folder(model_id: str, recent_dirs) -> str | None:
    """A recently opened Baichuan2 folder whose name is the served model id (case and -/_ ignored) and that has
    its tokenizer: the budget then counts exactly, with the model's own tokenizer and chat rule."""
    def key(name: str) -> str:
        return name.lower().replace("_", "-").strip()

    wanted = key(os.path.basename(str(model_id).rstrip("/")))
    for folder in recent_dirs if isinstance(recent_dirs, list) else []:
        if not isinstance(folder, str) or key(os.path.basename(folder.rstrip("/"))) != wanted:
            continue
        if os.path.isfile(os.path.join(folder, "tokenizer.model")) and \
                os.path.isfile(os.path.join(folder, "config.json")):
            return folder
    return None
