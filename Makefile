# Two commands: `make run` opens the app (demo model when none is configured), `make test` runs the tests.
# Each creates .venv on first use and installs what it needs.
.PHONY: run test bench cli screenshot llamacpp

run:
	@scripts/setup_env.sh
	.venv/bin/python -m gui $(ARGS)

test:
	@scripts/setup_env.sh --test
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q $(ARGS)

cli:
	@scripts/setup_env.sh
	.venv/bin/python -m inference $(ARGS)

bench:
	@scripts/setup_env.sh --test
	.venv/bin/python -m bench $(ARGS)

# Optional: llama-cpp-python built for this CPU, for the benchmark's llama.cpp rows (docs/BENCHMARKS.md).
llamacpp:
	@scripts/setup_env.sh --test
	scripts/install_llamacpp.sh

screenshot:
	@scripts/setup_env.sh --test
	QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot.py
