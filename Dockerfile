# syntax=docker/dockerfile:1
# agentchat in one container: Debian's Prosody 0.12, our Prosody modules and config template,
# the agentchat service and (by default) the Claude Code CLI. See docs/docker.md.
#
#   docker build -t agentchat .                                   # with Claude Code
#   docker build -t agentchat --build-arg WITH_CLAUDE=0 .        # mount your own `claude`
#   docker build -t agentchat --build-arg UID="$(id -u)" .       # match the owner of your repositories

ARG PYTHON_VERSION=3.11

# --- build: wheels of agentchat and its dependencies --------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG WITH_CLAUDE=1
WORKDIR /src
# README* matches nothing harmlessly while pyproject.toml is there.
COPY pyproject.toml README* ./
COPY agentchat ./agentchat
# The Prosody config template and our Lua modules go into the wheel as data files
# (<prefix>/share/agentchat/prosody), where the config generator looks for them.
COPY prosody ./prosody
# The `claude` extra brings claude-agent-sdk, whose wheel bundles the Claude Code CLI.
RUN if [ "$WITH_CLAUDE" = 1 ]; then spec=".[claude]"; else spec="."; fi \
    && pip wheel --no-cache-dir --wheel-dir /wheels "$spec"

# --- web client: Converse.js's build from npm, the version `make install` fetches ----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS webclient
ARG CONVERSE_VERSION=14.0.0
WORKDIR /converse
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends npm ca-certificates \
    && npm pack --silent --cafile /etc/ssl/certs/ca-certificates.crt "converse.js@${CONVERSE_VERSION}" \
    && tar -xzf "converse.js-${CONVERSE_VERSION}.tgz" --strip-components=1 package/dist

# --- runtime ------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
ARG CONVERSE_VERSION=14.0.0
ARG WITH_CLAUDE=1
ARG UID=1000
ARG GID=1000

# prosody: the XMPP server; lua-unbound: the one recommendation of Prosody's that we keep (its
# DNS resolver; without it Prosody prints a warning banner at every start); openssl: the
# self-signed certificate made at first start; git: what coding agents work with; setpriv/setsid
# (util-linux, essential) tie children to the entrypoint.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prosody lua-unbound openssl ca-certificates git \
    && rm -rf /var/lib/apt/lists/*

# Install from the build stage's wheels only (no compiler, no network, no source tree here);
# the versions were resolved in that stage, so there is nothing to pin here.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    if [ "$WITH_CLAUDE" = 1 ]; then spec="agentchat[claude]"; else spec="agentchat"; fi \
    && pip install --no-cache-dir --no-index --find-links=/wheels "$spec" \
    && python -c 'from agentchat.server.prosody_config import prosody_files_dir; print(prosody_files_dir())' \
    && if [ "$WITH_CLAUDE" = 1 ]; then \
         ln -s "$(python -c 'import claude_agent_sdk, pathlib; print(pathlib.Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude")')" /usr/local/bin/claude \
         && claude --version; \
       fi

COPY --chmod=0755 entrypoint.sh /usr/local/bin/entrypoint.sh
# Where agentchat.server.web_client looks for it (<prefix>/share/agentchat).
COPY --from=webclient /converse/dist /usr/local/share/agentchat/converse.js-${CONVERSE_VERSION}/dist

# An unprivileged user whose home is /root, so the original design's paths keep working:
# state in /root/.agent-chat, Claude Code's credentials in /root/.claude.
RUN groupadd --gid "$GID" agentchat \
    && useradd --uid "$UID" --gid agentchat --home-dir /root --no-create-home --shell /bin/bash agentchat \
    && mkdir -p /root/.agent-chat /work \
    && chown agentchat:agentchat /root /root/.agent-chat /work \
    && chmod 0750 /root && chmod 0700 /root/.agent-chat

ENV HOME=/root \
    AGENTCHAT_HOME=/root/.agent-chat \
    WORK_BASE_PATH=/work \
    XMPP_BIND="*" \
    XMPP_PORT=5222 \
    XMPP_DIRECT_TLS_PORT=5223 \
    PROSODY_LOG="*console" \
    PYTHONUNBUFFERED=1

# Numeric, so `runAsNonRoot` style checks can verify it without the image's passwd file.
USER ${UID}:${GID}
WORKDIR /work
VOLUME ["/work", "/root/.agent-chat"]
# c2s (STARTTLS), c2s with direct TLS (XEP-0368), HTTPS (the web client, file uploads). MCP (3001)
# and Prosody's plain HTTP (5280) listen on loopback inside the container only.
EXPOSE 5222 5223 5281

HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["python", "-m", "agentchat.healthcheck"]

ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD []
