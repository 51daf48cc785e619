"""The command line: `python -m inference` / baichuan-chat-cli (seed flow, generate, encode, ask, serve)."""
