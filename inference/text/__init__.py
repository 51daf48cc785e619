"""Text: tokenizers, the incremental detokenizer and the chat formats (no torch)."""
