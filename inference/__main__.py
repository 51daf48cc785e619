"""`python -m inference`: the command-line interface (seed chat flow, generate, encode, bench)."""
from .cli.main import main

raise SystemExit(main())
