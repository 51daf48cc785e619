"""The app's version: one place, read by pyproject (setuptools dynamic version) and both CLIs' --version."""
__version__ = "0.1.0"
