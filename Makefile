# wanvid developer tasks. Needs only python3 (>= 3.11), make and git; everything else goes in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo lint completions docs clean bench

# --no-compile: the test dependencies (boto3, moto, the SDKs) are many files the suite mostly never imports;
# what it does import is compiled once, as it is first imported.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

## test: ruff, mypy and the whole pytest suite
test: $(STAMP)
	$(BIN)/ruff check wanvid tests
	# 6 workers on 2 cores, and mypy beside them: most tests wait on the sandbox's task timings, which leaves
	# the cores half idle. Bytecode is cached even where the environment says not to: the suite starts some
	# hundreds of wanvid processes, each compiling it again. Both must pass; mypy's report follows the tests'.
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & types=$$!; \
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n 6; tests=$$?; \
	wait $$types; typed=$$?; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

## demo: start the built-in gateway, animate examples/cat.png into demo-out/cat.mp4, stop the gateway
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check wanvid tests
	$(BIN)/ruff format --check wanvid tests

## completions: regenerate completions/ and wanvid/cli/completion_table.json (tests fail when they drift from the code)
completions: $(STAMP)
	$(BIN)/python scripts/gen_completions.py

## docs: regenerate docs/cli.md, the command reference, and docs/wanvid.1, the man page (a test fails when either drifts)
docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

## bench: the performance targets, measured against the built-in gateway; exit 1 on a miss (~11 min;
##        BENCH_QUICK=1 for a ~2 min development run). Not part of test. See benchmarks/README.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache *.egg-info
