"""`python -m inference`: the command-line interface (seed chat flow, generate, encode, bench)."""
from .cli import main

raise SystemExit(main())
