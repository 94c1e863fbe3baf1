# The two commands of the README: `make run` and `make test`. Each installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
PIP_FLAGS ?= --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prosody python3-venv shellcheck openssl bubblewrap

.PHONY: install system-packages run test test-fast bench lint clean

install: system-packages $(VENV)/.installed

# Debian/Ubuntu packages: Prosody (the embedded and test server), venv, shellcheck (lint tests),
# bubblewrap (the sandbox each agent runs in).
system-packages:
	@missing=""; \
	command -v prosody >/dev/null || missing="$$missing prosody"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
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

test: install
	$(VENV)/bin/pytest -q

bench: install
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache
