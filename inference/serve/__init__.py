"""OpenAI-compatible HTTP API over one shared Engine: start_server(engine_provider, host, port, api_key) -> handle.

Built on aiohttp: server, SSE streaming and the remote backend's client in one kept library on asyncio, with
no separate ASGI server to pin. Imported lazily so that the CLI's other commands do not load it.
"""


def __getattr__(name):
    if name in ("start_server", "ServerHandle"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)


__all__ = ["ServerHandle", "start_server"]
