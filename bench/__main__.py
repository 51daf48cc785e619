"""`python -m bench`: the benchmark (a development tool beside the app, not installed with it)."""
from .run import main

raise SystemExit(main())
