-- mod_agentchat_commands: a bot's ad-hoc commands (XEP-0050) found at its bare JID, as clients ask.
--
-- agentchat's bots (the manager, each agent) offer their commands on their session, the resource
-- "agentchat". A client that asks the bare JID (Converse.js's Commands tab, with the address typed as
-- `manager@DOMAIN`) gets the server's answer for the account instead: no commands feature, no items,
-- "doesn't support ad-hoc commands". For an account whose "agentchat" resource is online, this module adds
-- the commands feature to the bare JID's disco#info and answers a disco#items query for the commands node with
-- what that session lists (its items name the full JID, where the commands run). Only askers mod_disco lets
-- see the account (contacts with a subscription) get that far; running a command, the bot applies its own
-- access rules.

local jid_split = require "util.jid".split;
local st = require "util.stanza";
local new_id = require "util.id".short;

local NS_COMMANDS = "http://jabber.org/protocol/commands";
local NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
local RESOURCE = "agentchat";

local function bot_session(username)
	local user = username and prosody.hosts[module.host].sessions[username];
	local session = user and user.sessions[RESOURCE];
	return session and session.resource == RESOURCE and session or nil;
end

module:hook("account-disco-info", function(event)
	local username = jid_split(event.reply.attr.from);
	if bot_session(username) then
		event.reply:tag("feature", { var = NS_COMMANDS }):up();
	end
end);

module:hook("account-disco-items-node", function(event)
	if event.node ~= NS_COMMANDS then return; end
	local origin, stanza = event.origin, event.stanza;
	local username = jid_split(stanza.attr.to);
	if not bot_session(username) then return; end
	-- Asked of the bot's session by the server, answered in the bare JID's name: a client matches the answer
	-- to its question by the address it asked (slixmpp does).
	local ask = st.iq({ type = "get", from = module.host, to = username .. "@" .. module.host .. "/" .. RESOURCE,
		id = new_id() }):tag("query", { xmlns = NS_DISCO_ITEMS, node = NS_COMMANDS });
	module:send_iq(ask, nil, 10):next(function(response)
		local reply = st.reply(stanza);
		local items = response.stanza:get_child("query", NS_DISCO_ITEMS);
		if items then
			reply:add_child(st.clone(items));
		else
			reply:tag("query", { xmlns = NS_DISCO_ITEMS, node = NS_COMMANDS });
		end
		origin.send(reply);
	end, function(err)
		module:log("debug", "commands of %s not listed: %s", username, tostring(err));
		origin.send(st.error_reply(stanza, "wait", "recipient-unavailable", "The bot did not answer"));
	end);
	return true;
end, 10); -- before mod_pep, which answers every node of an account (item-not-found for this one)
