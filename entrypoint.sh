#!/usr/bin/env bash
# agentchat's container entrypoint: Prosody and the agentchat service in one container.
#
# Configured through the original design's environment (XMPP_DOMAIN, XMPP_ADMIN_USERNAME,
# XMPP_ADMIN_PASSWORD, MANAGER_USERNAME, MANAGER_PASSWORD, MCP_PORT, MCP_PERMISSION_TIMEOUT,
# WORK_BASE_PATH, AGENTS_MAX_CONCURRENT, ...). Every path, port and program it uses can be
# overridden the same way, so it runs outside a container too (the tests do). Steps:
#   1. TLS certificate for the domain: the mounted one, else a self-signed one in the state dir;
#   2. passwords: defaults ("admin"/"manager") and empty ones are never used; a generated one is
#      printed once and kept in $AGENTCHAT_HOME/secrets.json;
#   3. the service config ($AGENTCHAT_CONFIG) and the Prosody config, from the same generator
#      the service uses (python -m agentchat.server.prosody_config);
#   4. admin and manager accounts (prosodyctl register: creates, or applies a changed password);
#   5. Prosody, then a wait until it answers a c2s stream with its features;
#   6. `agentchat start` (extra arguments of this script are passed on to it).
#
# Why this shell stays alive instead of exec'ing `agentchat start`: the shutdown order matters.
# The service must log its bots out and answer pending permission prompts while Prosody still
# runs, and only then may Prosody stop, cleanly (SIGTERM, its pidfile removed). With exec, the
# only thing left to stop Prosody would be PR_SET_PDEATHSIG, i.e. a SIGKILL at an arbitrary
# moment. So this script is the one owner of both children: SIGTERM/SIGINT are forwarded to
# the service at once, and once only (a second SIGTERM would find a service that is already
# stopping), the script waits for it (SIGKILL after SERVICE_STOP_TIMEOUT), then stops
# Prosody (SIGKILL after PROSODY_STOP_TIMEOUT) and exits with the service's status (0 after a
# requested stop). If Prosody dies on its own, the service is stopped and the script exits 1,
# so a restart policy restarts both. Both children run under `setpriv --pdeathsig`, so even a
# SIGKILL of this script leaves nothing behind: Prosody gets SIGKILL, the service SIGTERM.
# Each child gets its own session (setsid), so a terminal's Ctrl-C reaches only this script,
# which then stops the children in the right order.
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*"; }
die() {
	printf 'entrypoint: error: %s\n' "$*" >&2
	exit 1
}

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
	die "bash 5.1 or newer is needed (wait -n -p), this is $BASH_VERSION"
fi

# --- Settings -------------------------------------------------------------------------------
# The service's own variables (agentchat/config.py), with the original design's defaults.
XMPP_DOMAIN=${XMPP_DOMAIN:-localhost}
XMPP_DOMAIN=${XMPP_DOMAIN,,}
XMPP_PORT=${XMPP_PORT:-5222}
XMPP_ADMIN_USERNAME=${XMPP_ADMIN_USERNAME:-admin}
MANAGER_USERNAME=${MANAGER_USERNAME:-manager}
# Who may use the manager: by default every account of the domain, as with --embedded-prosody (this
# Prosody is the container's own, without open registration: accounts come from `agentchat user add`).
MANAGER_ALLOWED_USERS=${MANAGER_ALLOWED_USERS:-*@$XMPP_DOMAIN}
MCP_PORT=${MCP_PORT:-3001}
MCP_PERMISSION_TIMEOUT=${MCP_PERMISSION_TIMEOUT:-300000}
WORK_BASE_PATH=${WORK_BASE_PATH:-/work}
AGENTS_MAX_CONCURRENT=${AGENTS_MAX_CONCURRENT:-5}
AGENTS_IDLE_TIMEOUT=${AGENTS_IDLE_TIMEOUT:-3600000}
PROSODY_HTTP_PORT=${PROSODY_HTTP_PORT:-5280}
AGENTCHAT_HOME=${AGENTCHAT_HOME:-${HOME:-/root}/.agent-chat}
# This script's own: where c2s listens (all interfaces in a container; plaintext is then off),
# the optional direct-TLS port, paths and programs.
XMPP_BIND=${XMPP_BIND:-*}
XMPP_DIRECT_TLS_PORT=${XMPP_DIRECT_TLS_PORT:-}
# HTTPS (the c2s certificate): the web client and file uploads for browsers and phones. Empty disables it.
XMPP_HTTPS_PORT=${XMPP_HTTPS_PORT-5281}
# How fast a person's client may send (mod_limits; the service's accounts are never throttled).
XMPP_HUMAN_RATE=${XMPP_HUMAN_RATE:-1mb/s}
XMPP_TLS_CERT=${XMPP_TLS_CERT:-$AGENTCHAT_HOME/tls/$XMPP_DOMAIN.crt}
XMPP_TLS_KEY=${XMPP_TLS_KEY:-$AGENTCHAT_HOME/tls/$XMPP_DOMAIN.key}
AGENTCHAT_CONFIG=${AGENTCHAT_CONFIG:-$AGENTCHAT_HOME/config.json}
# `agentchat user add` looks for the server's config under $AGENTCHAT_HOME/prosody.
PROSODY_RUN_DIR=${PROSODY_RUN_DIR:-$AGENTCHAT_HOME/prosody}
PROSODY_CONFIG=$PROSODY_RUN_DIR/prosody.cfg.lua
PROSODY_LOG=${PROSODY_LOG:-$PROSODY_RUN_DIR/prosody.log}
PROSODY_SERVICE_JIDS_FILE=${PROSODY_SERVICE_JIDS_FILE:-$PROSODY_RUN_DIR/service-jids.txt}
PROSODY_START_TIMEOUT=${PROSODY_START_TIMEOUT:-20}
PROSODY_STOP_TIMEOUT=${PROSODY_STOP_TIMEOUT:-10}
SERVICE_STOP_TIMEOUT=${SERVICE_STOP_TIMEOUT:-60}
PYTHON=${PYTHON:-python3}
PROSODY_BIN=${PROSODY_BIN:-prosody}
PROSODYCTL_BIN=${PROSODYCTL_BIN:-prosodyctl}
AGENTCHAT_BIN=${AGENTCHAT_BIN:-agentchat}
# Read by the config step below and, for AGENTCHAT_HOME, by the service itself.
export XMPP_DOMAIN XMPP_PORT XMPP_ADMIN_USERNAME MANAGER_USERNAME MCP_PORT MCP_PERMISSION_TIMEOUT \
	WORK_BASE_PATH AGENTS_MAX_CONCURRENT AGENTS_IDLE_TIMEOUT PROSODY_HTTP_PORT AGENTCHAT_HOME \
	AGENTCHAT_CONFIG PROSODY_SERVICE_JIDS_FILE PROSODY_BIN XMPP_HTTPS_PORT MANAGER_ALLOWED_USERS

admin_jid=$XMPP_ADMIN_USERNAME@$XMPP_DOMAIN
manager_jid=$MANAGER_USERNAME@$XMPP_DOMAIN

# The service reaches Prosody over loopback (STARTTLS, no verification needed there).
case $XMPP_BIND in
'*' | 0.0.0.0) service_host=127.0.0.1 ;;
:: | '[::]') service_host=::1 ;;
*) service_host=$XMPP_BIND ;;
esac

# Variables the service would otherwise read from its environment; the config file written
# below holds their effective values, so they are removed from the service's environment
# (a default password in it would override the generated one, and agents need no passwords).
consumed_vars=(XMPP_HOST XMPP_PORT XMPP_DOMAIN XMPP_ADMIN_USERNAME XMPP_ADMIN_PASSWORD MANAGER_USERNAME
	MANAGER_PASSWORD MCP_PORT MCP_PERMISSION_TIMEOUT WORK_BASE_PATH AGENTS_MAX_CONCURRENT
	AGENTS_IDLE_TIMEOUT PROSODY_HTTP_PORT)

# Children die with this script, even on SIGKILL (PR_SET_PDEATHSIG), and get their own session.
if command -v setpriv >/dev/null; then
	die_with_us=(setpriv --pdeathsig KILL --)
	stop_with_us=(setpriv --pdeathsig TERM --)
else
	log "warning: setpriv (util-linux) not found: children may outlive a SIGKILL of this script"
	die_with_us=()
	stop_with_us=()
fi

# --- Child processes ------------------------------------------------------------------------
prosody_pid=""
service_pid=""
service_signalled=0
probe_pid=""
stop_requested=0

# The service gets one SIGTERM, whoever asks (trap, supervise, cleanup) and however often.
signal_service_once() {
	if [[ -n $service_pid ]] && ((!service_signalled)); then
		service_signalled=1
		kill -TERM "$service_pid" 2>/dev/null || true
	fi
}

# shellcheck disable=SC2317,SC2329 # invoked by the traps below
on_stop_signal() {
	if ((stop_requested)); then
		log "received SIG$1 again: the stop already under way goes on"
		# Explicit 0: a bare `return` in a trap gives the interrupted `wait`'s status, and set -e exits.
		return 0
	fi
	log "received SIG$1: stopping"
	stop_requested=1
	signal_service_once
}
trap 'on_stop_signal TERM' TERM
trap 'on_stop_signal INT' INT

# wait_first PID...: wait for the first of these children to exit; set WAITED_PID and
# WAITED_RC. Returns 1 (WAITED_PID empty) when a trapped signal interrupted the wait.
wait_first() {
	WAITED_RC=0
	wait -n -p WAITED_PID "$@" || WAITED_RC=$?
	WAITED_PID=${WAITED_PID:-}
	[[ -n $WAITED_PID ]]
}

# await_child PID NAME TIMEOUT: give a signalled child TIMEOUT seconds, then SIGKILL it; reap it
# and set CHILD_RC. The timer is a child too, so nothing waits in a loop.
await_child() {
	local pid=$1 name=$2 timer
	"${die_with_us[@]}" sleep "$3" &
	timer=$!
	until wait_first "$pid" "$timer"; do :; done
	if [[ $WAITED_PID == "$timer" ]]; then
		log "$name did not stop within $3 s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
		until wait_first "$pid"; do :; done
	else
		kill "$timer" 2>/dev/null || true
		wait "$timer" 2>/dev/null || true
	fi
	CHILD_RC=$WAITED_RC
}

# Stops the service (if the trap has not signalled it yet) and reaps it; sets CHILD_RC.
stop_service() {
	signal_service_once
	await_child "$service_pid" agentchat "$SERVICE_STOP_TIMEOUT"
	service_pid=""
}

# shellcheck disable=SC2317,SC2329 # invoked by the EXIT trap
cleanup() {
	if [[ -n $probe_pid ]]; then
		kill "$probe_pid" 2>/dev/null || true
		wait "$probe_pid" 2>/dev/null || true
		probe_pid=""
	fi
	if [[ -n $service_pid ]]; then stop_service; fi
	if [[ -n $prosody_pid ]]; then
		kill -TERM "$prosody_pid" 2>/dev/null || true
		await_child "$prosody_pid" Prosody "$PROSODY_STOP_TIMEOUT"
		prosody_pid=""
		log "Prosody stopped"
	fi
}
trap 'rc=$?; cleanup; exit "$rc"' EXIT

exit_if_stop_requested() {
	if ((stop_requested)); then
		log "stopped during start-up"
		exit 0
	fi
}

# --- Start-up steps -------------------------------------------------------------------------
prepare_dirs() {
	if ! mkdir -p "$AGENTCHAT_HOME" 2>/dev/null || [[ ! -w $AGENTCHAT_HOME ]]; then
		die "state directory $AGENTCHAT_HOME is not writable by uid $(id -u): chown the volume to that uid, or run with --user"
	fi
	chmod 0700 "$AGENTCHAT_HOME" 2>/dev/null || true
	mkdir -p "$PROSODY_RUN_DIR" "$(dirname "$AGENTCHAT_CONFIG")"
	mkdir -p "$WORK_BASE_PATH" 2>/dev/null || log "warning: cannot create WORK_BASE_PATH $WORK_BASE_PATH"
}

ensure_tls() {
	if [[ -f $XMPP_TLS_CERT && -f $XMPP_TLS_KEY ]]; then
		log "TLS certificate: $XMPP_TLS_CERT"
		return
	fi
	if [[ -e $XMPP_TLS_CERT || -e $XMPP_TLS_KEY ]]; then
		die "only one of XMPP_TLS_CERT ($XMPP_TLS_CERT) and XMPP_TLS_KEY ($XMPP_TLS_KEY) exists: give both or neither"
	fi
	mkdir -p "$(dirname "$XMPP_TLS_CERT")" "$(dirname "$XMPP_TLS_KEY")"
	local output
	# Into temporary names first: an interrupted run never leaves a key without its certificate.
	if ! output=$(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-days 3650 -subj "/CN=$XMPP_DOMAIN" -addext "subjectAltName=DNS:$XMPP_DOMAIN,DNS:*.$XMPP_DOMAIN" \
		-keyout "$XMPP_TLS_KEY.new" -out "$XMPP_TLS_CERT.new" 2>&1); then
		rm -f "$XMPP_TLS_KEY.new" "$XMPP_TLS_CERT.new"
		die "openssl could not make a certificate: $output"
	fi
	chmod 0644 "$XMPP_TLS_CERT.new"
	mv "$XMPP_TLS_KEY.new" "$XMPP_TLS_KEY"
	mv "$XMPP_TLS_CERT.new" "$XMPP_TLS_CERT"
	log "generated a self-signed TLS certificate for $XMPP_DOMAIN: $XMPP_TLS_CERT (mount yours at that path to replace it)"
}

# Resolves the admin and manager passwords and writes the service config (keys this script
# owns are overwritten, others kept); prints the two passwords for prosodyctl on stdout.
resolve_passwords_and_write_config() {
	AC_SERVICE_HOST=$service_host AC_ADMIN_JID=$admin_jid AC_MANAGER_JID=$manager_jid \
		"$PYTHON" - <<'PY'
import json
import os
import secrets
import sys
from pathlib import Path

from agentchat.config import load_settings
from agentchat.errors import AgentChatError
from agentchat.server.embedded import SECRETS_FILE
from agentchat.server.prosody_config import atomic_write_text

env = os.environ
home = Path(env["AGENTCHAT_HOME"])
config_path = Path(env["AGENTCHAT_CONFIG"])


def fail(message: str) -> None:
    sys.exit(f"entrypoint: error: {message}")


def read_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path} must hold a JSON object")
    return data


# Same keys as `agentchat start --embedded-prosody`, so both modes share one secrets file.
secrets_path = home / SECRETS_FILE
stored = read_object(secrets_path)
passwords = {}
for key, var, default, jid in (
    ("admin_password", "XMPP_ADMIN_PASSWORD", "admin", env["AC_ADMIN_JID"]),
    ("manager_password", "MANAGER_PASSWORD", "manager", env["AC_MANAGER_JID"]),
):
    given = env.get(var, "")
    if "\n" in given:
        fail(f"{var} must be one line")
    if given and given != default:
        passwords[key] = given
        continue
    why = f"is the well-known default {default!r}" if given else "is not set"
    if isinstance(stored.get(key), str) and stored[key]:
        print(f"entrypoint: {var} {why}: {jid} keeps its generated password (in {secrets_path})", file=sys.stderr)
    else:
        stored[key] = secrets.token_urlsafe(18)
        atomic_write_text(secrets_path, json.dumps(stored, indent=2) + "\n", mode=0o600)
        print(
            f"entrypoint: {var} {why}: generated a password for {jid}, shown this once "
            f"(kept in {secrets_path}):\n    {jid} password: {stored[key]}",
            file=sys.stderr,
        )
    passwords[key] = stored[key]


def number(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # the settings model names the variable in its error


config = read_object(config_path)
for name in ("xmpp", "manager", "mcp", "work", "agents", "prosody", "provisioning"):
    if not isinstance(config.get(name), dict):
        config[name] = {}
http_port = number(env["PROSODY_HTTP_PORT"])
config["xmpp"].update(
    host=env["AC_SERVICE_HOST"],
    port=number(env["XMPP_PORT"]),
    domain=env["XMPP_DOMAIN"],
    adminUsername=env["XMPP_ADMIN_USERNAME"],
    adminPassword=passwords["admin_password"],
    # c2s requires TLS; the service connects over loopback, where verifying is pointless.
    security="starttls",
    verifyTls=False,
)
config["manager"].update(username=env["MANAGER_USERNAME"], password=passwords["manager_password"])
config["mcp"].update(port=number(env["MCP_PORT"]), permissionTimeout=number(env["MCP_PERMISSION_TIMEOUT"]))
config["work"].update(basePath=env["WORK_BASE_PATH"])
config["agents"].update(
    maxConcurrent=number(env["AGENTS_MAX_CONCURRENT"]), idleTimeout=number(env["AGENTS_IDLE_TIMEOUT"])
)
# The same file as `agentchat_service_jids_file` in the Prosody config.
config["prosody"].update(
    binary=env["PROSODY_BIN"], httpPort=http_port, serviceJidsFile=env["PROSODY_SERVICE_JIDS_FILE"]
)
config["provisioning"].update(adminRestUrl=f"http://127.0.0.1:{http_port}/admin_rest")
# Files: taken from this Prosody's uploads only (as clients see them), fetched over loopback.
if not isinstance(config.get("files"), dict):
    config["files"] = {}
public = f"https://{env['XMPP_DOMAIN']}:{env['XMPP_HTTPS_PORT']}" if env["XMPP_HTTPS_PORT"] else f"http://localhost:{http_port}"
config["files"].update(uploadUrl=f"{public}/file_share/", localUploadUrl=f"http://127.0.0.1:{http_port}/file_share/")

# Validate before replacing the file, with nothing but the file (the service sees the same).
candidate = config_path.with_name(f".{config_path.name}.candidate")
try:
    atomic_write_text(candidate, json.dumps(config, indent=2) + "\n", mode=0o600)
    load_settings(candidate, environ={"AGENTCHAT_HOME": str(home)}, dotenv_files=[])
    os.replace(candidate, config_path)
except AgentChatError as exc:
    fail(f"invalid setting: {exc}")
finally:
    candidate.unlink(missing_ok=True)
print(passwords["admin_password"])
print(passwords["manager_password"])
PY
}

write_prosody_config() {
	local args=(
		--domain "$XMPP_DOMAIN" --run-dir "$PROSODY_RUN_DIR" --output "$PROSODY_CONFIG"
		--c2s-interface "$XMPP_BIND" --c2s-port "$XMPP_PORT" --http-port "$PROSODY_HTTP_PORT"
		--admin "$admin_jid" --admin "$manager_jid" --service-jids-file "$PROSODY_SERVICE_JIDS_FILE"
		--tls-cert "$XMPP_TLS_CERT" --tls-key "$XMPP_TLS_KEY" --no-plaintext --log-file "$PROSODY_LOG"
	)
	if [[ -n $XMPP_DIRECT_TLS_PORT ]]; then args+=(--c2s-direct-tls-port "$XMPP_DIRECT_TLS_PORT"); fi
	if [[ -n $XMPP_HTTPS_PORT ]]; then args+=(--https-port "$XMPP_HTTPS_PORT"); fi
	args+=(--c2s-rate "$XMPP_HUMAN_RATE")
	# The web client, when the image carries Converse.js (exit 3: it does not; everything else works).
	if "$PYTHON" -m agentchat.server.web_client --domain "$XMPP_DOMAIN" --manager-jid "$manager_jid" \
		--output "$PROSODY_RUN_DIR/www" >/dev/null; then
		args+=(--web-root "$PROSODY_RUN_DIR/www")
	fi
	"$PYTHON" -m agentchat.server.prosody_config "${args[@]}" >/dev/null ||
		die "could not write the Prosody config (see above)"
}

# prosodyctl register creates the account or overwrites its password: safe on every start. The
# password goes to its prompt on stdin (asked twice), never on its command line, where ps shows it.
register_account() {
	local user=$1 password=$2 output
	if ! output=$(printf '%s\n%s\n' "$password" "$password" |
		"$PROSODYCTL_BIN" --config "$PROSODY_CONFIG" register "$user" "$XMPP_DOMAIN" 2>&1); then
		die "prosodyctl register $user@$XMPP_DOMAIN failed: ${output//"$password"/********}"
	fi
}

start_prosody() {
	"${die_with_us[@]}" setsid "$PROSODY_BIN" --config "$PROSODY_CONFIG" -F </dev/null &
	prosody_pid=$!
	# Ready only when a c2s stream is answered with features: the port opens ~100 ms earlier.
	"$PYTHON" -c '
import asyncio, sys
from agentchat.errors import ProsodyError
from agentchat.server.readiness import wait_for_stream_features
try:
    asyncio.run(wait_for_stream_features(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
except ProsodyError as exc:
    sys.exit(f"entrypoint: error: {exc}")
' "$service_host" "$XMPP_PORT" "$XMPP_DOMAIN" "$PROSODY_START_TIMEOUT" &
	probe_pid=$!
	until wait_first "$probe_pid" "$prosody_pid"; do exit_if_stop_requested; done
	if [[ $WAITED_PID == "$prosody_pid" ]]; then
		prosody_pid=""
		die "Prosody exited with status $WAITED_RC during start-up (log: $PROSODY_LOG)"
	fi
	probe_pid=""
	((WAITED_RC == 0)) || die "Prosody did not become ready (log: $PROSODY_LOG)"
	log "Prosody ready (pid $prosody_pid): $XMPP_DOMAIN, c2s on $XMPP_BIND:$XMPP_PORT${XMPP_DIRECT_TLS_PORT:+, direct TLS on $XMPP_BIND:$XMPP_DIRECT_TLS_PORT}"
}

start_service() {
	local unset_args=() var
	for var in "${consumed_vars[@]}"; do unset_args+=(-u "$var"); done
	# From the state dir: a current directory that is some repository's has no business here.
	(cd "$AGENTCHAT_HOME" && exec env "${unset_args[@]}" "${stop_with_us[@]}" setsid \
		"$AGENTCHAT_BIN" --config "$AGENTCHAT_CONFIG" start "$@" </dev/null) &
	service_pid=$!
	log "agentchat started (pid $service_pid)"
}

# Until the service exits, or Prosody dies, or a stop is requested; returns the exit status.
supervise() {
	local rc
	# A signal that came before service_pid was known could not be forwarded by the trap.
	if ((stop_requested)); then signal_service_once; fi
	while :; do
		if wait_first "$service_pid" "$prosody_pid"; then
			if [[ $WAITED_PID == "$service_pid" ]]; then
				service_pid=""
				rc=$WAITED_RC
				log "agentchat exited with status $rc"
			else
				prosody_pid=""
				log "error: Prosody exited on its own with status $WAITED_RC (log: $PROSODY_LOG); stopping agentchat"
				stop_service
				rc=1
			fi
			break
		elif ((stop_requested)); then
			# The trap has already forwarded SIGTERM: give the service its time, signal nothing.
			stop_service
			rc=$CHILD_RC
			log "agentchat exited with status $rc"
			break
		fi
	done
	# Killed by the SIGTERM we forwarded before it installed its handler (it was still starting):
	# nothing was left half-done, so a requested stop still ends with 0.
	if ((stop_requested)) && ((rc == 143 || rc == 130)); then
		log "agentchat was ended by the signal before it could handle it: counted as a requested stop"
		rc=0
	fi
	return "$rc"
}

main() {
	log "starting agentchat for $XMPP_DOMAIN (state in $AGENTCHAT_HOME)"
	prepare_dirs
	ensure_tls
	local passwords
	passwords=$(resolve_passwords_and_write_config) || exit 1
	local admin_password=${passwords%%$'\n'*} manager_password=${passwords#*$'\n'}
	write_prosody_config
	register_account "$XMPP_ADMIN_USERNAME" "$admin_password"
	register_account "$MANAGER_USERNAME" "$manager_password"
	log "accounts $admin_jid and $manager_jid are set; service config: $AGENTCHAT_CONFIG"
	exit_if_stop_requested
	start_prosody
	exit_if_stop_requested
	start_service "$@"
	local rc=0
	supervise || rc=$?
	exit "$rc"
}

main "$@"
