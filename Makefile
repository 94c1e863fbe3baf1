# The two commands of the README: `make run` and `make test`. Each installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
PIP_FLAGS ?= --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prosody python3-venv shellcheck openssl

# The optional engines, pinned (the versions their tests ran against), in a project-local npm prefix.
ENGINES_PREFIX ?= .cache/engines
ENGINE_PACKAGES := @openai/codex@0.171.0 @google/gemini-cli@0.61.0 opencode-ai@1.18.33
ENGINES_STAMP := $(ENGINES_PREFIX)/.installed-$(shell echo '$(ENGINE_PACKAGES)' | md5sum | cut -c1-12)

.PHONY: install system-packages run test test-fast bench lint clean install-engines engines-if-npm

install: system-packages $(VENV)/.installed

# Debian/Ubuntu packages: Prosody (the embedded and test server), venv, shellcheck (lint tests).
system-packages:
	@missing=""; \
	command -v prosody >/dev/null || missing="$$missing prosody"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -q --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -q -e ".[claude,dev]"
	touch $@

run: install
	$(VENV)/bin/agentchat start --embedded-prosody

test: install engines-if-npm
	$(VENV)/bin/pytest -q

# Codex, Gemini CLI and OpenCode (npm; ~880 MiB; npm's own cache makes a reinstall quick, a warm run costs nothing).
install-engines: $(ENGINES_STAMP)

$(ENGINES_STAMP):
	@command -v npm >/dev/null || { echo "install-engines needs npm (Node.js 20 or newer)"; exit 1; }
	@command -v bwrap >/dev/null || { echo "Installing bubblewrap (Codex's sandbox)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap; }
	npm install --prefix $(ENGINES_PREFIX) --prefer-offline --no-audit --no-fund --loglevel=error $(ENGINE_PACKAGES)
	rm -f $(ENGINES_PREFIX)/.installed-*
	touch $@

# make test installs the engines when npm is there, so that their adapters are tested; without npm
# their tests are skipped (pytest -ra prints why).
engines-if-npm:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory install-engines; \
	else echo "npm not found: the Codex, Gemini CLI and OpenCode tests will be skipped (make install-engines needs npm)"; fi

bench: install
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .cache/test-engines
