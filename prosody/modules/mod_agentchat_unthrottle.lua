-- mod_agentchat_unthrottle: lift mod_limits' c2s read throttle for agentchat's own accounts.
--
-- mod_limits (0.12) only unthrottles the static `unlimited_jids` set, read once at load.
-- agentchat creates agent accounts at run time, so it lists its service JIDs in a file
-- (`agentchat_service_jids_file`, one bare JID per line, '#' comments, replaced atomically
-- by the service) and this module looks at it at every successful login. Humans keep the
-- limit. Works whatever created the account (mod_admin_rest, XEP-0133, prosodyctl).
--
-- The service writes a version token in the file's first line ("# … version 1a2b…") at every
-- rewrite: a login reads that one line, and parses the whole file only when the token changed.
-- (Parsing every line at every login cost 3.8 ms per login at 1000 accounts: a restart that
-- logs 1000 agents in spent 4 s of Prosody's one core in it.) A file without a token (written
-- by hand) is parsed at every login, as before.
--
-- A JID added while its session is already online is not unthrottled until it logs in again:
-- the service writes the file before it creates and logs in the account.

local jid_prep = require "util.jid".prep;
local modulemanager = require "core.modulemanager";

local jids_file = module:get_option_string("agentchat_service_jids_file");

local cached_version, cached_jids = nil, {};

local function parse(f, jids)
	for line in f:lines() do
		line = line:gsub("#.*$", ""):match("^%s*(.-)%s*$");
		local jid = line ~= "" and jid_prep(line);
		if jid then jids[jid] = true; end
	end
end

local function read_service_jids()
	if not jids_file then return {}; end
	local f = io.open(jids_file, "r");
	if not f then return {}; end -- no file yet: no runtime service accounts
	local first = f:read("*l");
	local version = first and first:match("^#.-version (%x+)");
	if version and version == cached_version then
		f:close();
		return cached_jids;
	end
	local jids = {};
	if first then
		local jid = first:gsub("#.*$", ""):match("^%s*(.-)%s*$");
		jid = jid ~= "" and jid_prep(jid);
		if jid then jids[jid] = true; end
	end
	parse(f, jids);
	f:close();
	if version then
		cached_version, cached_jids = version, jids;
	end
	return jids;
end

local function unthrottle(session)
	-- Prefer mod_limits' own function: it knows both the epoll (setlimit) and the filter path.
	local limits = modulemanager.get_module("*", "limits");
	if limits and type(limits.unlimited) == "function" then
		limits.unlimited(session);
	elseif session.conn and session.conn.setlimit then
		session.conn:setlimit(0);
	else
		session.throttle = nil;
	end
end

module:hook("authentication-success", function (event)
	local session = event.session;
	-- The session is "c2s_unbound" here (authenticated, no resource yet).
	if not session.username or not session.type:match("^c2s") then return; end
	local jid = session.username .. "@" .. session.host;
	if read_service_jids()[jid] then
		unthrottle(session);
		session.log("debug", "Service account %s: c2s rate limit lifted", jid);
	end
end, -1); -- after mod_limits' own handler, so the two never fight over the session
