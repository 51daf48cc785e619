"""Test fixtures (not part of the app): small real Baichuan2-format model folders and tokenizers."""
