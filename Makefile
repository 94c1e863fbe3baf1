# The two commands of the README: `make run` and `make test`. Each installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
PIP_FLAGS ?= --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prosody python3-venv shellcheck openssl bubblewrap

# The oldest Claude Code of the tested range (pyproject.toml pins claude-agent-sdk, whose wheel bundles the
# CLI): the real-CLI tests run against it and against the newest, which the install brings.
CLAUDE_OLDEST_SDK := 0.2.187
CLAUDE_OLDEST := .cache/claude-cli/$(CLAUDE_OLDEST_SDK)/claude

# The optional engines, pinned (the versions their tests ran against), in a project-local npm prefix.
ENGINES_PREFIX ?= .cache/engines
ENGINE_PACKAGES := @openai/codex@0.171.0 @google/gemini-cli@0.61.0 opencode-ai@1.18.33
ENGINES_STAMP := $(ENGINES_PREFIX)/.installed-$(shell echo '$(ENGINE_PACKAGES)' | md5sum | cut -c1-12)

# The web client: Converse.js from npm, pinned (agentchat/server/web_client.py names the same version).
CONVERSE_VERSION := 14.0.0
CONVERSE_DIST := .cache/converse.js-$(CONVERSE_VERSION)/dist

.PHONY: install system-packages test-packages web-client run test test-fast bench lint clean install-engines engines-if-npm

install: system-packages $(VENV)/.installed web-client

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

# What only the tests use: Profanity driven through tmux (tests/interop/test_profanity.py), and
# gnutls-cli, GnuTLS as Dino uses it (tests/interop/test_gnutls.py); Chromium for the web client's
# browser test (tests/web/), with a colour emoji font so that its screenshot shows the bots' emoji.
# Without apt (not Debian/Ubuntu), the tests that need them are skipped with the reason printed.
test-packages:
	@missing=""; \
	command -v profanity >/dev/null || missing="$$missing profanity"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	command -v gnutls-cli >/dev/null || missing="$$missing gnutls-bin"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages for the tests:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "No apt-get: the tests that need$$missing will be skipped"; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -q --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -q -e ".[claude,dev]"
	touch $@

# Converse.js's build (dist/, 24 MB) from the npm tarball, kept in .cache/ (npm's own cache is reused).
# Without npm there is no web client: the login hint says so, everything else works.
CONVERSE_TARBALL := .cache/npm/converse.js-$(CONVERSE_VERSION).tgz
web-client:
	@if [ -f $(CONVERSE_DIST)/converse.min.js ]; then exit 0; fi; \
	if [ ! -f $(CONVERSE_TARBALL) ]; then \
	  if ! command -v npm >/dev/null; then \
	    echo "npm not found: no web client (apt install npm, then make install again); any XMPP client works"; \
	    exit 0; \
	  fi; \
	  echo "Fetching the web client: npm pack converse.js@$(CONVERSE_VERSION)"; \
	  mkdir -p .cache/npm && (cd .cache/npm && npm pack --silent converse.js@$(CONVERSE_VERSION) >/dev/null) || exit 1; \
	fi; \
	rm -rf $(CONVERSE_DIST).tmp && mkdir -p $(CONVERSE_DIST).tmp && \
	tar -xzf $(CONVERSE_TARBALL) -C $(CONVERSE_DIST).tmp --strip-components=2 package/dist && \
	rm -rf $(CONVERSE_DIST) && mv $(CONVERSE_DIST).tmp $(CONVERSE_DIST)

# Stays in the foreground (Ctrl-C stops it). In another terminal, the command is $(VENV)/bin/agentchat.
# ARGS for more flags: make run ARGS="--public --domain chat.example.org"
run: install
	@echo "agentchat runs in the foreground; in another terminal use $(CURDIR)/$(VENV)/bin/agentchat (e.g. user add bob)"
	$(VENV)/bin/agentchat start --embedded-prosody $(ARGS)

$(CLAUDE_OLDEST): | $(VENV)/.installed
	$(VENV)/bin/pip download $(PIP_FLAGS) -q --no-deps --only-binary=:all: -d .cache/wheels "claude-agent-sdk==$(CLAUDE_OLDEST_SDK)"
	$(VENV)/bin/python -m tests.support.claude_versions extract .cache/wheels/claude_agent_sdk-$(CLAUDE_OLDEST_SDK)-*.whl $(dir $@)

test: install test-packages engines-if-npm $(CLAUDE_OLDEST)
	$(VENV)/bin/mypy agentchat
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

# Not part of `make test`: builds the Docker image and runs it for real (docs/docker.md).
# With a Docker engine if one answers; else with buildah + podman + runc, installed here.
DOCKER_CHECK_PACKAGES := buildah podman runc debootstrap iproute2
.PHONY: docker-check
docker-check: install
	@if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then \
	  missing=""; \
	  for package in $(DOCKER_CHECK_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$package"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	  fi; \
	fi
	$(SUDO) $(VENV)/bin/python -m tests.docker.check_image $(DOCKER_CHECK_ARGS)
