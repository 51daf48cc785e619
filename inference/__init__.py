"""Baichuan2 inference engine: loader, tokenizer, chat rule, decoder, sampling, streaming (no Qt)."""
