"""Command line: the seed's flow (two offline inferences, then terminal chat), `generate`, `encode`, `ask` and `serve`."""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

from .ask import add_ask_parser, run_ask
from .cache import add_cache_parser, run_cache
from .options import sampling_options, tensor_parallel_option
from .output import encode_text, stream_json
from ..choices import DEVICES, DTYPES, QUANTIZE
from ..env import variables_help
from ..errors import InputError, UserError
from ..serve.command import add_serve_parser, run_serve
from ..torch_guard import torch_import_problem
from ..version import __version__

OFFLINE_PROMPTS = ["解释一下“温故而知新”", "What is the capital of France?"]
CHAT_HELP = "Type a message. Commands: `stream` toggles streaming, `clear` clears the history, `exit` quits."
DESCRIPTION = """Baichuan2 chat on NPU, GPU or CPU.

Without a command: load the model (--model, else the demo model), answer two fixed
prompts offline (one Chinese, one English), then chat in the terminal (`stream`
toggles streaming, `clear` clears the history, `exit` or Ctrl-D quits).
With a command: see `baichuan-chat-cli COMMAND --help`."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error:` line, as every other CLI error."""

    def error(self, message):
        message = " ".join(message.splitlines())  # an argument holding a line break stays on the one line
        self.exit(2, f"error: {message} (see --help)\n")


def model_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--model", metavar="DIR", default=default,
                        help="Baichuan2 model folder (default: the built-in demo model)")
    parser.add_argument("--device", choices=DEVICES, default=default or "auto",
                        help="where the model runs (default: auto = NPU, else CUDA, else CPU)")
    parser.add_argument("--dtype", choices=DTYPES, default=default or "auto",
                        help="weight and activation dtype (default: auto, the fastest the device runs well)")
    parser.add_argument("--max-seq-len", type=int, metavar="L", default=default,
                        help="MAX_SEQ_LEN: prompt + answer budget (default: the model's model_max_length)")
    parser.add_argument("--quantize", choices=QUANTIZE, default=default or "none",
                        help="int8: weight-only int8 linear layers (about 2x faster CPU decode, half the memory); "
                             "int4: group-wise 4-bit (about a quarter of bf16's memory)")
    tensor_parallel_option(parser, default)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="baichuan-chat-cli", description=DESCRIPTION, epilog=variables_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    model_options(parser, None)
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    gen = sub.add_parser("generate", help="raw input ids -> output ids")
    model_options(gen, argparse.SUPPRESS)
    gen.add_argument("--input-ids", required=True, metavar="JSON", help="a JSON list of token ids")
    sampling_options(gen)
    output = gen.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print one JSON object: output_ids, finish_reason, text, metrics")
    output.add_argument("--stream-json", action="store_true",
                        help='one JSON line per token as it comes ({"token_id", "text"}), then one line '
                             '{"output_ids", "finish_reason", "metrics"}')
    enc = sub.add_parser("encode", help="chat messages -> input ids under the model's chat rule")
    model_options(enc, argparse.SUPPRESS)
    enc.add_argument("--messages", required=True, metavar="FILE.json",
                     help='a JSON list of {"role", "content"} messages (or an object with a "messages" list)')
    enc.add_argument("--max-new-tokens", type=int, metavar="N",
                     help="room kept for the answer; older rounds are dropped to fit MAX_SEQ_LEN")
    enc.add_argument("--json", action="store_true",
                     help="print one JSON object (input_ids, dropped_rounds, budget) instead of the readable view")
    add_ask_parser(sub, model_options)
    add_serve_parser(sub, model_options)
    add_cache_parser(sub)
    return parser


def load_engine(args):
    from ..engine import Engine

    return Engine.load(args.model, device=args.device, dtype=args.dtype, max_seq_len=args.max_seq_len,
                       quantize=None if args.quantize == "none" else args.quantize,
                       tensor_parallel=getattr(args, "tensor_parallel", 1))


def parse_input_ids(text: str) -> list[int]:
    try:
        ids = json.loads(text)
    except (ValueError, RecursionError) as exc:  # also numbers over 4300 digits and absurd nesting
        note = json_problem(exc)
        raise InputError("--input-ids must be a JSON list of integers, e.g. '[195, 92067, 196]'"
                         + (f" ({note})" if note else "")) from None
    if not isinstance(ids, list):
        raise InputError("--input-ids must be a JSON list of integers, e.g. '[195, 92067, 196]'")
    return ids


def sampling_from_args(engine, args):
    if args.greedy:
        chosen = [n for n in ("temperature", "top_k", "top_p", "repetition_penalty", "seed") if getattr(args, n) is not None]
        if chosen:
            raise InputError(f"--greedy cannot be combined with --{chosen[0].replace('_', '-')}")
        return engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    overrides = {n: getattr(args, n) for n in ("temperature", "top_k", "top_p", "repetition_penalty", "seed")
                 if getattr(args, n) is not None}
    return engine.default_sampling(do_sample=True, **overrides)


def run_generate(args) -> int:
    ids = parse_input_ids(args.input_ids)
    engine = load_engine(args)
    sampling = sampling_from_args(engine, args)
    if args.stream_json:
        stream_json(engine.generate(ids, args.max_new_tokens, sampling), json_for_stdout, rounded)
        return 0
    finish = None
    for event in engine.generate(ids, args.max_new_tokens, sampling):
        finish = event
    result = {"output_ids": finish.output_ids, "finish_reason": finish.finish_reason,
              "text": finish.text, "metrics": rounded(finish.metrics)}
    print(json_for_stdout(result) if args.json else finish.text)
    return 0


def json_problem(exc: BaseException) -> str:
    """What json.loads disliked beyond plain syntax, in a few words ('' for syntax errors)."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if isinstance(exc, ValueError) and "digits" in str(exc):  # int() refuses over sys.get_int_max_str_digits()
        return "it holds a number too long to read"
    return ""


def read_messages(path: Path):
    """A --messages file: a JSON list of messages or an object with a "messages" list (UTF-8, BOM allowed).

    Structure is checked by the chat rule; here only what it cannot see: text with unpaired surrogates
    (JSON may spell "\\ud800"), which no tokenizer can encode.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"messages file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = json_problem(exc) or exc.__class__.__name__
        raise InputError(f"{path.name or path} is not a readable JSON file ({reason})") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and not is_text(content):
            raise InputError(f"message {i} has content that is not valid Unicode text "
                             "(an unpaired surrogate escape such as \\ud800)")
    return messages


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run_encode(args) -> int:
    messages = read_messages(Path(args.messages))
    engine = load_engine(args)
    chat = engine.encode_chat(messages, args.max_new_tokens)
    result = {"input_ids": chat.input_ids, "dropped_rounds": chat.dropped_rounds, "budget": chat.budget}
    print(json.dumps(result) if args.json else encode_text(chat, engine.tokenizer))
    return 0


def json_for_stdout(result: dict) -> str:
    """JSON with the text as is when stdout can carry it, else ASCII escapes (e.g. PYTHONIOENCODING=ascii)."""
    text = json.dumps(result, ensure_ascii=False)
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return json.dumps(result)
    return text


def tolerant_stdout() -> None:
    """Characters stdout's encoding lacks print as escapes instead of ending the program with a traceback."""
    try:
        sys.stdout.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError, OSError):
        pass


def print_error(exc: BaseException) -> None:
    """The one `error:` line (a message that spans lines, e.g. through a file name, is joined)."""
    print(f"error: {' '.join(str(exc).splitlines())}", file=sys.stderr)


def rounded(metrics: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def run_command(args) -> int:
    if args.command == "generate":
        return run_generate(args)
    if args.command == "encode":
        return run_encode(args)
    if args.command == "ask":
        return run_ask(args, load_engine, json_for_stdout, rounded)
    if args.command == "serve":
        return run_serve(args, load_engine)
    if args.command == "cache":
        return run_cache(args)
    from .terminal_chat import run_seed_flow

    return run_seed_flow(load_engine(args), OFFLINE_PROMPTS, CHAT_HELP)


def quiet_broken_pipe() -> int:
    """Whoever read stdout went away (`generate ... | head`): stop without a traceback, as Python's docs on
    SIGPIPE advise (stdout pointed at devnull, so the flush at exit has nowhere to fail), exit status 141
    as if killed by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is no real file (a test's StringIO): nothing to flush at exit
    return 141


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    tolerant_stdout()
    remote_only = args.command == "ask" and args.remote  # a thin client: no torch needed
    problem = None if remote_only else torch_import_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        code = run_command(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit as an "Exception ignored" traceback
        return code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except UserError as exc:
        print_error(exc)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
