"""`python -m inference ask "TEXT"`: one answer from a local model folder, the demo model, or a remote server."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .options import sampling_options
from ..errors import InputError

SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "repetition_penalty", "seed")


def add_ask_parser(sub, model_options) -> None:
    ask = sub.add_parser("ask", help="answer one message (local folder, demo model, or --remote server)")
    model_options(ask, argparse.SUPPRESS)
    ask.add_argument("--remote", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    ask.add_argument("--api-key", metavar="KEY", help="the remote server's API key")
    ask.add_argument("--remote-model", metavar="NAME", help="the remote model (default: the first it lists)")
    ask.add_argument("--system", metavar="TEXT", help="a system message before the question")
    sampling_options(ask)
    ask.add_argument("--json", action="store_true", help='print one JSON object {"text", "finish_reason", "metrics"}')
    ask.add_argument("text", metavar="TEXT", help="the message")


def chosen_sampling(args) -> dict | str | None:
    """'greedy', the sampling flags the user gave (a dict), or None for the model's (server's) defaults."""
    chosen = {n: getattr(args, n) for n in SAMPLING_FLAGS if getattr(args, n) is not None}
    if args.greedy:
        if chosen:
            raise InputError(f"--greedy cannot be combined with --{next(iter(chosen)).replace('_', '-')}")
        return "greedy"
    return chosen or None


def check_args(args) -> None:
    if args.remote and args.model:
        raise InputError("--model and --remote cannot be combined: ask a local folder or a server")
    if not args.remote:
        for flag in ("api_key", "remote_model"):
            if getattr(args, flag):
                raise InputError(f"--{flag.replace('_', '-')} needs --remote URL")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not args.text.strip():
        raise InputError("the message is empty; give the text to ask")


def open_backend(args, load_engine):
    """(engine-like, sampling) for the request: a RemoteEngine with only the chosen fields, or a local Engine."""
    choice = chosen_sampling(args)
    if args.remote:
        from ..remote import RemoteEngine

        engine = RemoteEngine(args.remote, args.api_key, args.remote_model)
        fields = {"temperature": 0, "repetition_penalty": 1.0} if choice == "greedy" else choice
        return engine, fields
    engine = load_engine(args)
    if choice == "greedy":
        return engine, engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    return engine, engine.default_sampling(**({"do_sample": True, **choice} if choice else {}))


def run_ask(args, load_engine, json_for_stdout, rounded) -> int:
    from ..events import FinishEvent, TokenEvent

    check_args(args)
    engine, sampling = open_backend(args, load_engine)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": args.text}]
    cancel = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if main else None
    finish = None
    try:
        for event in engine.stream_chat(messages, args.max_new_tokens, sampling, cancel):
            if isinstance(event, TokenEvent) and not args.json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, FinishEvent):
                finish = event
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json_for_stdout({"text": finish.text, "finish_reason": finish.finish_reason,
                               "metrics": rounded(finish.metrics)}))
        return 0
    m = finish.metrics
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(f"[{finish.finish_reason}, {m.get('output_tokens')} tokens, TTFT {m.get('ttft_s', 0):.2f} s, "
          f"decode {m.get('decode_tokens_per_s', 0):.1f} tok/s]", file=sys.stderr)
    return 0
