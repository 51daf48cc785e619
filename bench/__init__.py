"""The benchmark (not part of the app): ours vs transformers vs llama.cpp, same-phase ratios."""
