-- mod_admin_rest: agentchat's own implementation (Prosody 0.12) of the subset of the
-- mod_admin_rest HTTP API that agentchat uses. Paths, bodies and status codes follow the
-- upstream module (wltsmrz/mod_admin_rest), so the Python client works against either:
--
--   GET    /admin_rest/ping                  200 {"result":"PONG"}
--   POST   /admin_rest/user/USER  {password} 201 created, 409 exists, 400 bad body/name
--   GET    /admin_rest/user/USER             200 {"result":{"user":{...}}}, 404 missing
--   DELETE /admin_rest/user/USER             200 deleted (sessions kicked), 404 missing
--   PATCH  /admin_rest/user/USER/password    200 changed (sessions kicked), 400, 404
--
-- Rosters (agentchat's own; upstream has no such routes). CONTACT is the bare JID of an account
-- on this server (any of its hosts); both rosters change, so the subscription is mutual:
--
--   GET    /admin_rest/roster/USER
--          200 {"result":{"count":N,"roster":{"JID":{"subscription":"both","name":"…",
--               "groups":["agentchat"],"ask":null}}}}, 404 no such user
--   POST   /admin_rest/roster/USER  {"contact":"JID","name":"…","groups":["agentchat"]}
--          200 USER has CONTACT (named, grouped) and CONTACT has USER, both with subscription
--          "both"; the online resources of both get a roster push (RFC 6121 §2.1.6) and each
--          other's current presence. Again: the name and groups are replaced. 400 bad body
--          (contact missing, not a bare JID, USER itself), 404 USER or CONTACT does not exist.
--   DELETE /admin_rest/roster/USER  {"contact":"JID"}
--          200 CONTACT left USER's roster and USER left CONTACT's (pushed, "remove"), and each
--          saw the other go unavailable; 404 no such user, or CONTACT is in neither roster.
--
-- Sessions (agentchat's own):
--
--   DELETE /admin_rest/sessions/USER  {"reason":"…"}
--          200 {"result":{"count":N}}: each of USER's sessions, live or hibernating (XEP-0198), first
--          tells USER's contacts it is unavailable with the reason as its status, then is closed with a
--          <reset/> stream error (a client that is still there reconnects); what the server had sent
--          it unacknowledged goes to offline storage. 404 no such user.
--
-- Every request needs HTTP Basic auth as a JID listed in `admins` (401 otherwise) and must
-- come from a loopback peer (403 otherwise). Users are localparts on this module's host.

module:depends("http");

local usermanager = require "core.usermanager";
local rostermanager = require "core.rostermanager";
local json = require "util.json";
local st = require "util.stanza";
local jid_split = require "util.jid".split;
local jid_prep = require "util.jid".prep;
local jid_bare = require "util.jid".bare;
local encodings = require "util.encodings";
local nodeprep = encodings.stringprep.nodeprep;
local base64_decode = encodings.base64.decode;
local urldecode = require "util.http".urldecode;
local sha256 = require "util.hashes".sha256;

local host = module.host;

-- Admin credentials that passed test_password, remembered for a while: with internal_hashed,
-- test_password derives the key again (PBKDF2, 10,000 iterations: ~7 ms of Prosody's one core),
-- and the service makes two or three requests per agent it creates. Keyed by a hash of the JID
-- and the password; forgotten when that admin's password changes or the account goes.
local VERIFIED_FOR = 300; -- seconds
local verified = {}; -- sha256(jid \0 password) -> { jid = …, expires = … }

local function forget_verified(event)
	local jid = event.username .. "@" .. event.host;
	for key, entry in pairs(verified) do
		if entry.jid == jid then verified[key] = nil; end
	end
end
module:hook_global("user-password-changed", forget_verified);
module:hook_global("user-deleted", forget_verified);

local function respond(event, status, result)
	local response = event.response;
	response.status_code = status;
	response.headers.content_type = "application/json";
	if status == 401 then
		response.headers.www_authenticate = 'Basic realm="admin_rest"';
	end
	return json.encode({ result = result });
end

local function is_loopback(ip)
	if type(ip) ~= "string" then return false; end
	return ip:match("^127%.") ~= nil or ip == "::1" or ip:match("^::ffff:127%.") ~= nil;
end

-- Both the socket peer and the client mod_http derived from X-Forwarded-For must be
-- local: a reverse proxy on this machine must not turn remote callers into local ones.
local function peer_is_local(request)
	local conn_ip = request.conn and request.conn.ip and request.conn:ip();
	return is_loopback(conn_ip) and is_loopback(request.ip);
end

-- Returns nil when the caller is an authenticated admin, else the HTTP status and reason.
local function check_admin(request)
	local header = request.headers.authorization;
	local encoded = header and header:match("^[Bb]asic%s+(%S+)%s*$");
	local decoded = encoded and base64_decode(encoded);
	local user, password = nil, nil;
	if decoded then user, password = decoded:match("^([^:]*):(.*)$"); end
	local admin_jid = user and jid_prep(user);
	if not admin_jid or not password then
		return 401, "Missing or malformed authorization";
	end
	local node, admin_host = jid_split(admin_jid);
	if not node or not prosody.hosts[admin_host] or not prosody.hosts[admin_host].users then
		return 401, "Authentication failure";
	end
	local key, now = sha256(admin_jid .. "\0" .. password), os.time();
	local entry = verified[key];
	if not entry or entry.expires < now then
		verified[key] = nil;
		if not usermanager.test_password(node, admin_host, password) then
			return 401, "Authentication failure";
		end
		verified[key] = { jid = admin_jid, expires = now + VERIFIED_FOR };
	end
	if not usermanager.is_admin(admin_jid, host) then
		return 401, "User must be an administrator";
	end
	return nil;
end

-- Wraps a route handler with the loopback and admin checks and the username parsing.
local function guarded(handler)
	return function (event, path)
		local request = event.request;
		if not peer_is_local(request) then
			module:log("warn", "Refused admin_rest request from non-loopback peer %s", tostring(request.ip));
			return respond(event, 403, "Only loopback clients may use admin_rest");
		end
		local status, reason = check_admin(request);
		if status then return respond(event, status, reason); end
		if path == nil then return handler(event); end
		local raw_user, attribute = path:match("^([^/]+)/?(.*)$");
		local username = raw_user and nodeprep(urldecode(raw_user));
		if not username or username == "" then
			return respond(event, 400, "Invalid username");
		end
		return handler(event, username, attribute);
	end
end

local function read_password(event)
	local body = event.request.body;
	local data = body and body ~= "" and json.decode(body);
	local password = type(data) == "table" and data.password;
	if type(password) ~= "string" or password == "" then return nil; end
	return password;
end

local function describe_user(username)
	local user_sessions = prosody.hosts[host].sessions[username];
	local sessions = {};
	for resource, session in pairs(user_sessions and user_sessions.sessions or {}) do
		sessions[#sessions + 1] = { resource = resource, ip = session.ip, secure = session.secure and true or false };
	end
	local roster = {};
	for contact, item in pairs(rostermanager.load_roster(username, host) or {}) do
		if type(contact) == "string" then -- the roster's `false` key holds metadata
			roster[contact] = { subscription = item.subscription, name = item.name };
		end
	end
	return { connected = #sessions > 0, sessions = sessions, roster = roster };
end

local function get_user(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	return respond(event, 200, { user = describe_user(username) });
end

local function add_user(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	local password = read_password(event);
	if not password then return respond(event, 400, "Body must be JSON with a password"); end
	if usermanager.user_exists(username, host) then
		return respond(event, 409, "User already exists");
	end
	local ok, err = usermanager.create_user(username, password, host);
	if not ok then
		module:log("error", "Creating %s@%s failed: %s", username, host, tostring(err));
		return respond(event, 500, "Internal server error");
	end
	module:fire_event("user-registered", { username = username, host = host, source = "mod_admin_rest" });
	return respond(event, 201, "User registered: " .. username .. "@" .. host);
end

local function delete_user(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	-- Fires user-deleted, on which mod_c2s closes the account's live sessions.
	local ok, err = usermanager.delete_user(username, host);
	if not ok then
		module:log("error", "Deleting %s@%s failed: %s", username, host, tostring(err));
		return respond(event, 500, "Internal server error");
	end
	return respond(event, 200, "User deleted");
end

local function patch_user(event, username, attribute)
	if attribute ~= "password" then return respond(event, 400, "Only the password can be changed"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	local password = read_password(event);
	if not password then return respond(event, 400, "Body must be JSON with a password"); end
	-- Fires user-password-changed, on which mod_c2s closes the account's live sessions.
	local ok, err = usermanager.set_password(username, password, host, nil);
	if not ok then
		module:log("error", "Changing the password of %s@%s failed: %s", username, host, tostring(err));
		return respond(event, 500, "Internal server error");
	end
	return respond(event, 200, "User modified: " .. username .. "@" .. host);
end

-- Rosters. The roster table load_roster returns is the one online sessions use, so changing it
-- and saving it is what they see; roster_push tells their interested resources.

local function read_body(event)
	local body = event.request.body;
	local data = body and body ~= "" and json.decode(body);
	return type(data) == "table" and data or nil;
end

local function roster_items(username, user_host)
	local items, count = {}, 0;
	for contact, item in pairs(rostermanager.load_roster(username, user_host) or {}) do
		if type(contact) == "string" then -- the roster's `false` key holds metadata
			local groups = {};
			for group in pairs(item.groups or {}) do groups[#groups + 1] = group; end
			table.sort(groups);
			items[contact] = { subscription = item.subscription, name = item.name, groups = groups, ask = item.ask };
			count = count + 1;
		end
	end
	return items, count;
end

-- An existing account on one of this server's hosts: its node and host, or nil.
local function local_account(bare)
	local node, account_host, resource = jid_split(bare);
	if not node or resource or not prosody.hosts[account_host] or not prosody.hosts[account_host].users then
		return nil;
	end
	if not usermanager.user_exists(node, account_host) then return nil; end
	return node, account_host;
end

-- Set (or, with item nil, remove) one roster item and push it; false if there was nothing to remove.
local function set_roster_item(node, item_host, contact, item)
	local roster = rostermanager.load_roster(node, item_host);
	if not roster then return nil, "roster not loaded"; end
	if item == nil and roster[contact] == nil and not (roster[false] and roster[false].pending[contact]) then
		return false;
	end
	roster[contact] = item;
	if roster[false] and roster[false].pending then roster[false].pending[contact] = nil; end
	local ok, err = rostermanager.save_roster(node, item_host, roster, contact);
	if not ok then return nil, err or "cannot save the roster"; end
	rostermanager.roster_push(node, item_host, contact);
	return true;
end

-- A presence probe from `from` to `to` (bare JIDs, both local): Prosody answers it with the current
-- presence of every available resource of `to`, or "unavailable", as for a client's initial presence.
local function probe(from, to)
	local _, from_host = jid_split(from);
	prosody.core_post_stanza(prosody.hosts[from_host], st.presence({ type = "probe", from = from, to = to }));
end

local function went_away(from, to)
	local _, from_host = jid_split(from);
	prosody.core_post_stanza(prosody.hosts[from_host], st.presence({ type = "unavailable", from = from, to = to }));
end

local function read_contact(event, user_bare)
	local data = read_body(event);
	local raw = data and data.contact;
	local contact = type(raw) == "string" and jid_prep(raw);
	if not contact or contact ~= jid_bare(contact) or contact == user_bare then
		return nil, data;
	end
	return contact, data;
end

local function get_roster(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	local items, count = roster_items(username, host);
	return respond(event, 200, { count = count, roster = items });
end

local function add_contact(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	local user_bare = username .. "@" .. host;
	local contact, data = read_contact(event, user_bare);
	if not contact then
		return respond(event, 400, "Body must be JSON with a contact: the bare JID of another account");
	end
	local name = data.name;
	if name ~= nil and (type(name) ~= "string" or name == "") then
		return respond(event, 400, "name must be a non-empty string");
	end
	if data.groups ~= nil and type(data.groups) ~= "table" then
		return respond(event, 400, "groups must be a list of strings");
	end
	local groups = {};
	for _, group in ipairs(data.groups or {}) do
		if type(group) ~= "string" or group == "" then return respond(event, 400, "groups must be strings"); end
		groups[group] = true;
	end
	local contact_node, contact_host = local_account(contact);
	if not contact_node then
		return respond(event, 404, "Contact is not an account on this server");
	end
	-- The user sees the contact under our name and groups; the contact sees the user plainly.
	local ok, err = set_roster_item(username, host, contact, { subscription = "both", name = name, groups = groups });
	if ok then
		ok, err = set_roster_item(contact_node, contact_host, user_bare, { subscription = "both", groups = {} });
	end
	if not ok then
		module:log("error", "Adding %s to the roster of %s failed: %s", contact, user_bare, tostring(err));
		return respond(event, 500, "Internal server error");
	end
	probe(user_bare, contact);
	probe(contact, user_bare);
	return respond(event, 200, "Contact added: " .. contact .. " and " .. user_bare .. " see each other");
end

local function remove_contact(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	local user_bare = username .. "@" .. host;
	local contact = read_contact(event, user_bare);
	if not contact then
		return respond(event, 400, "Body must be JSON with a contact: the bare JID of another account");
	end
	local contact_node, contact_host = local_account(contact);
	local function knows(roster, jid) return roster and (roster[jid] ~= nil or roster[false].pending[jid] ~= nil); end
	local in_user = knows(rostermanager.load_roster(username, host), contact);
	local in_contact = contact_node and knows(rostermanager.load_roster(contact_node, contact_host), user_bare);
	if not in_user and not in_contact then
		return respond(event, 404, "Contact is not in the roster");
	end
	-- Each sees the other go offline first, as when a contact is removed by hand.
	went_away(contact, user_bare);
	if contact_node then went_away(user_bare, contact); end
	local ok, err = set_roster_item(username, host, contact, nil);
	if ok ~= nil and contact_node then
		ok, err = set_roster_item(contact_node, contact_host, user_bare, nil);
	end
	if ok == nil then
		module:log("error", "Removing %s from the roster of %s failed: %s", contact, user_bare, tostring(err));
		return respond(event, 500, "Internal server error");
	end
	return respond(event, 200, "Contact removed: " .. contact);
end

local function end_sessions(event, username, attribute)
	if attribute ~= "" then return respond(event, 404, "Invalid request path"); end
	if not usermanager.user_exists(username, host) then
		return respond(event, 404, "User does not exist");
	end
	local data = read_body(event) or {};
	local reason = type(data.reason) == "string" and data.reason ~= "" and data.reason or "Ended by the administrator";
	local user = prosody.hosts[host].sessions[username];
	local sessions = {};
	for _, session in pairs(user and user.sessions or {}) do sessions[#sessions + 1] = session; end
	for _, session in ipairs(sessions) do
		if session.presence then
			-- As if the client had said it: contacts see it go with the reason as its status, and
			-- mod_presence then sends no bare "Disconnected" one when the session ends.
			prosody.core_process_stanza(session, st.presence({ type = "unavailable" }):text_tag("status", reason));
		end
		-- pre-session-close (mod_smacks) revokes resumption first, so the session ends now, live or
		-- hibernating, and its unacknowledged stanzas go to offline storage.
		session:close({ condition = "reset", text = reason });
	end
	return respond(event, 200, { count = #sessions });
end

local function ping(event)
	return respond(event, 200, "PONG");
end

module:provides("http", {
	name = "admin_rest";
	default_path = module:get_option_string("admin_rest_base", "/admin_rest");
	route = {
		["GET /ping"] = guarded(ping);
		["GET /user/*"] = guarded(get_user);
		["POST /user/*"] = guarded(add_user);
		["DELETE /user/*"] = guarded(delete_user);
		["PATCH /user/*"] = guarded(patch_user);
		["GET /roster/*"] = guarded(get_roster);
		["POST /roster/*"] = guarded(add_contact);
		["DELETE /roster/*"] = guarded(remove_contact);
		["DELETE /sessions/*"] = guarded(end_sessions);
	};
});
