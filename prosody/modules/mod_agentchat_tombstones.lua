-- mod_agentchat_tombstones: a message to an agent that was ended gets an answer, not silence.
--
-- When agentchat ends an agent, it deletes the agent's account and lists it in a file
-- (`agentchat_tombstones_file`: one line per ended agent, "jid<TAB>time<TAB>text", replaced atomically by the
-- service). Prosody would answer a message to the missing account with a bare service-unavailable error,
-- which clients show as a failed delivery at best. This module answers a chat message to a listed JID with
-- a chat message from that JID saying what happened ("swift-fox was ended by alice@… on …"), and the error
-- with the same text. The file is read when such a message comes (they are rare), so changes need no reload.

local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;
local user_exists = require "core.usermanager".user_exists;

local tombstones_file = module:get_option_string("agentchat_tombstones_file");

local function tombstone_text(bare)
	if not tombstones_file then return nil; end
	local f = io.open(tombstones_file, "r");
	if not f then return nil; end
	local found;
	for line in f:lines() do
		local jid, text = line:match("^([^\t#]+)\t[^\t]*\t(.+)$");
		if jid and jid == bare then found = text; end
	end
	f:close();
	return found;
end

local function answer(event)
	local origin, stanza = event.origin, event.stanza;
	local t = stanza.attr.type;
	if t == "error" or t == "groupchat" or t == "headline" or not stanza:get_child("body") then return; end
	local bare = jid_bare(stanza.attr.to);
	local node, host = jid_split(bare);
	if not node or user_exists(node, host) then return; end
	local text = tombstone_text(bare);
	if not text then return; end
	origin.send(st.message({ from = bare, to = stanza.attr.from, type = "chat", id = stanza.attr.id and (stanza.attr.id .. "-ended") })
		:text_tag("body", text));
	origin.send(st.error_reply(stanza, "cancel", "service-unavailable", text));
	return true;
end

module:hook("message/bare", answer, 10); -- before mod_message's bounce (-1)
module:hook("message/full", answer, 10);
