"""The seed's terminal flow: two offline inferences, then a chat loop (`stream`, `clear`, `exit`; Ctrl+C stops an answer)."""
from __future__ import annotations

import signal
import sys
import threading

from ..engine import ChatStarted, TokenEvent
from ..errors import UserError


def answer(engine, messages: list[dict], stream: bool, out=sys.stdout) -> tuple[str, dict]:
    """Generate one answer for messages; Ctrl+C stops it and keeps the partial text."""
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if _main_thread() else None
    try:
        finish = None
        for event in engine.stream_chat(messages, None, engine.default_sampling(), cancel):
            if isinstance(event, ChatStarted):
                if event.dropped_rounds:
                    print(f"(dropped {event.dropped_rounds} old round(s) to fit MAX_SEQ_LEN {engine.max_seq_len})",
                          file=out)
            elif isinstance(event, TokenEvent):
                if stream:
                    out.write(event.text)
                    out.flush()
            else:
                finish = event
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not stream:
        out.write(finish.text)
    if finish.finish_reason == "cancelled":
        out.write(" [stopped]")
    m = finish.metrics
    out.write(f"\n[{m['output_tokens']} tokens, TTFT {m['ttft_s']:.2f} s, "
              f"prefill {m['prefill_tokens_per_s']:.1f} tok/s, decode {m['decode_tokens_per_s']:.2f} tok/s]\n")
    out.flush()
    return finish.text, m


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_seed_flow(engine, offline_prompts: list[str], help_text: str, inp=sys.stdin, out=sys.stdout) -> int:
    """Two offline inferences, then the interactive loop until `exit` or end of input."""
    label = "Demo model" if engine.is_demo else engine.name
    print(f"{label} on {engine.device} ({engine.dtype}), MAX_SEQ_LEN {engine.max_seq_len}", file=out)
    if engine.is_demo:
        print("This is a small demo model (SmolLM2-135M); use --model DIR to chat with a Baichuan2 folder.", file=out)
    for prompt in offline_prompts:
        print(f"\nUser: {prompt}\nAssistant: ", end="", file=out)
        answer(engine, [{"role": "user", "content": prompt}], stream=True, out=out)
    print(f"\n{help_text}", file=out)
    messages: list[dict] = []
    stream = True
    while True:
        out.write("\nUser: ")
        out.flush()
        try:
            line = inp.readline()
        except KeyboardInterrupt:
            out.write("\n(type exit to quit)\n")
            continue
        if not line:
            out.write("\n")
            return 0
        text = line.rstrip("\n")
        command = text.strip().lower()
        if command == "exit":
            return 0
        if command == "stream":
            stream = not stream
            print(f"streaming {'on' if stream else 'off'}", file=out)
            continue
        if command == "clear":
            messages.clear()
            print("history cleared", file=out)
            continue
        if not text.strip():
            continue
        messages.append({"role": "user", "content": text})
        out.write("Assistant: ")
        try:
            reply, _ = answer(engine, messages, stream, out)
        except UserError as exc:
            messages.pop()
            print(f"error: {exc}", file=out)
            continue
        messages.append({"role": "assistant", "content": reply})
