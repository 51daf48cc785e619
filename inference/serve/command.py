"""`python -m inference serve`: load a model, serve it until SIGINT/SIGTERM, print the URL when ready."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_serve_parser(sub, model_options) -> None:
    serve = sub.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API")
    model_options(serve, argparse.SUPPRESS)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (0: a free one, printed)")
    serve.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' on every request")
    serve.add_argument("--allow-no-key", action="store_true",
                       help="allow a non-loopback --host without --api-key (anyone who reaches the port may use it)")
    serve.add_argument("--cors-origin", metavar="ORIGIN", help="allow browser pages from ORIGIN (default: no CORS)")


def run_serve(args, load_engine) -> int:
    from .server import check_bind, start_server

    check_bind(args.host, args.api_key, args.allow_no_key)  # refuse before spending time on loading
    engine = load_engine(args)  # Ctrl+C here is the CLI's usual "interrupted"
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        handle = start_server(lambda: engine, args.host, args.port, args.api_key, args.cors_origin,
                              args.allow_no_key, log=lambda line: print(line, file=sys.stderr, flush=True))
        if handle.warning:
            print(handle.warning, file=sys.stderr)
        label = "demo model" if engine.is_demo else engine.name
        print(f"serving {label} ({engine.name}) at {handle.url} (OpenAI-compatible; Ctrl+C stops)", flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping: answers in flight are cancelled", file=sys.stderr, flush=True)
        handle.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
