// agentchat's web client: Converse.js, logged in to this server over WebSocket (BOSH when that fails),
// opened on the manager's chat. settings.js (written by agentchat.server.web_client) names the domain
// and the manager.
// A module: it runs after dist/converse.min.js (a module too, which sets window.converse).
(function () {
  var settings = window.AGENTCHAT_SETTINGS || {};
  var secure = window.location.protocol === "https:";

  // The connection's state on <body data-xmpp="…">: a page (or a test) can tell when the login is done.
  converse.plugins.add("agentchat-status", {
    initialize: function () {
      var api = this._converse.api;
      function show(state) { document.body.dataset.xmpp = state; }
      api.listen.on("connected", function () { show("connected"); });
      api.listen.on("reconnected", function () { show("connected"); });
      api.listen.on("disconnected", function () { show("disconnected"); });
    }
  });

  converse.initialize({
    websocket_url: (secure ? "wss://" : "ws://") + window.location.host + "/xmpp-websocket",
    bosh_service_url: window.location.origin + "/http-bind",
    discover_connection_methods: false,
    view_mode: "fullscreen",
    assets_path: "/dist/",
    default_domain: settings.domain,
    auto_join_private_chats: settings.manager ? [settings.manager] : [],
    allow_non_roster_messaging: true,
    // The bots' forms (XEP-0050 ad-hoc commands): ⚙ → Commands, the bot's address with /agentchat.
    allow_adhoc_commands: true,
    // Not until agentchat speaks OMEMO: against a bot it only logs device errors.
    blacklisted_plugins: ["converse-omemo"],
    whitelisted_plugins: ["agentchat-status"],
    show_self_in_roster: false,
    show_send_button: true,
    show_images_inline: true,
    play_sounds: false,
    loglevel: "warn"
  });
})();
