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
-- Every request needs HTTP Basic auth as a JID listed in `admins` (401 otherwise) and must
-- come from a loopback peer (403 otherwise). Users are localparts on this module's host.

module:depends("http");

local usermanager = require "core.usermanager";
local rostermanager = require "core.rostermanager";
local json = require "util.json";
local jid_split = require "util.jid".split;
local jid_prep = require "util.jid".prep;
local encodings = require "util.encodings";
local nodeprep = encodings.stringprep.nodeprep;
local base64_decode = encodings.base64.decode;
local urldecode = require "util.http".urldecode;

local host = module.host;

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
	if not usermanager.test_password(node, admin_host, password) then
		return 401, "Authentication failure";
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
	};
});
