"""`python -m gui`: start the desktop chat app."""
from .app import main

raise SystemExit(main())
