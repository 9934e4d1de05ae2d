/* config.h — every ternd option, declared once.
 *
 * One X-macro row per option drives the config struct, defaults, bounds, the config
 * file parser, command-line flags (--name=value), environment variables (TERN_NAME),
 * --help and docs/options.md (redis static_configs[], nginx ngx_command_t).
 * Precedence, lowest first: defaults, config file, environment, flags. */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

/* X(name, type, default, min, max, help) — type is STR, INT or BOOL; min/max bound INT. */
/* a hand-laid table, one row a line however long: clang-format leaves it alone */
// clang-format off
#define TERN_OPTIONS(X)                                                                              \
  X(config, STR, "", 0, 0, "config file to read (name = value lines, # comments)")                 \
  X(listen, STR, "127.0.0.1:8080", 0, 0, "host:port for WebSocket, router and REST")               \
  X(data_dir, STR, "./tern-data", 0, 0, "directory for the database and the generated app keys")    \
  X(app_id, STR, "", 0, 0, "app id clients must send (generated and saved when empty)")             \
  X(app_key, STR, "", 0, 0, "app key for REST calls (generated and saved when empty)")              \
  X(master_key, STR, "", 0, 0, "master key: signatures, tokens, admin REST (generated when empty)") \
  X(tls_cert, STR, "", 0, 0, "PEM certificate chain: with tls_key, the listener speaks wss:// and https://") \
  X(tls_key, STR, "", 0, 0, "PEM private key for tls_cert")                                         \
  X(public_url, STR, "", 0, 0, "WebSocket URL the router hands out (default ws://<listen>/); in a cluster, this node's")       \
  X(bus, STR, "", 0, 0, "cluster bus, redis://host:port[/db]: nodes on one bus act as one service (docs/cluster.md); empty: a single node") \
  X(node_id, STR, "", 0, 0, "this node's id on the bus, 1-64 of A-Z a-z 0-9 - _ . (default: generated, new each start)") \
  X(drain_timeout, INT, 3000, 0, 60000, "cluster: milliseconds a stopping node (SIGTERM) gives its clients, told goaway, to leave on their own before it closes the rest (0: at once)") \
  X(public_http_url, STR, "", 0, 0, "base of the file URLs uploads answer (default: public_url with ws→http, wss→https)") \
  X(web_root, STR, "", 0, 0, "directory of the web console (/console) and browser chat (/chat), read at start (default: web/ beside ternd, then ../share/tern/web; \"off\": none)") \
  X(files_dir, STR, "", 0, 0, "directory for uploaded files (default <data_dir>/files)")            \
  X(max_file_size, INT, 10485760, 1, 1073741824, "largest file upload in bytes, held in memory while it arrives (413 above)") \
  X(max_uploads, INT, 32, 0, 100000, "file uploads in flight (held in memory) at once, over all addresses; the master key's are not counted (0 = no limit; HTTP 503)") \
  X(max_uploads_per_ip, INT, 4, 0, 100000, "file uploads in flight at once from one IP address (0 = no limit; HTTP 429)") \
  X(workers, INT, 0, 0, 64, "network worker threads, each with its own event loop (0 = cores)")     \
  X(io_uring, BOOL, 1, 0, 1, "each worker sends all the socket writes of a loop iteration in one io_uring submission instead of one write(2) per connection; off, or where the kernel refuses io_uring (io_uring_disabled, a seccomp filter): one write per connection") \
  X(idle_timeout, INT, 600, 1, 86400, "seconds of client silence before close 4107 (JS pings every 180 s)") \
  X(login_timeout, INT, 60, 1, 3600, "seconds a connection may stay without a session (4108)")     \
  X(max_frame, INT, 65536, 1024, 16777216, "largest WebSocket message accepted; above it close 4109") \
  X(max_message, INT, 5120, 64, 1048576, "largest message content incl. pushData (4109)")          \
  X(dedupe_window, INT, 300, 0, 86400, "seconds after a reconnect (session/open r:true) during which a send whose dt the sender already stored in that conversation, within the window before the reconnect, is answered with the stored message's ack instead of being stored again (0 = off; docs/protocol-map.md)") \
  X(max_members, INT, 500, 2, 100000, "members per conversation (4304)")                            \
  X(max_conv_doc, INT, 65536, 1024, 16777216, "largest conversation document (attributes and custom fields as compact JSON, bytes): a create or update past it gets 4301 / 4306, REST 400") \
  X(query_timeout, INT, 1000, 10, 600000, "milliseconds one conversation query may run (off the network loop) before it is abandoned with 4310 / REST 400") \
  X(max_queries_per_ip, INT, 32, 0, 100000, "conversation queries running or queued from one IP address, WebSocket and REST together (0 = no limit; 4310 / REST 400 past it)") \
  X(member_roles, BOOL, 0, 0, 1, "enforce roles: only owner/managers add or remove others, the owner cannot leave while there is a Manager (4320, 4324)") \
  X(max_conn_rate, INT, 2000, 0, 1000000, "commands per second one connection may send (burst 2x; 0 = no limit; 4116)") \
  X(max_client_rate, INT, 1000, 0, 1000000, "commands per second one logged-in client may send (burst 2x; 0 = no limit; 4116)") \
  X(max_sessions_per_ip, INT, 10000, 0, 100000000, "clients logged in at once from one IP address, over all its connections (0 = no limit; 4113 to the extra session open; behind a proxy that is not in trusted_proxies every login comes from its address: raise it)") \
  X(max_conns_per_ip, INT, 1000, 0, 1000000, "open connections from one IP address (0 = no limit; HTTP 429)") \
  X(max_conns, INT, 0, 0, 100000000, "open connections in all; past it HTTP 503 (0 = the open-files limit less a reserve of 256 descriptors, or of a quarter below 1,024)") \
  X(debug_faults, BOOL, 0, 0, 1, "enable POST /debug/faults (master key) to inject storage failures in tests") \
  X(max_sessions_per_conn, INT, 64, 1, 4096, "clients multiplexed on one WebSocket")                \
  X(output_limit, INT, 8388608, 65536, 1073741824, "bytes queued to one slow connection before it is dropped") \
  X(output_limit_ip, INT, 67108864, 0, 68719476736, "bytes queued to all slow connections from one IP address; past it the largest of their queues are dropped first (0 = no limit)") \
  X(output_limit_total, INT, 536870912, 0, 68719476736, "bytes queued to all slow connections of the server; past it the largest queues are dropped first (0 = no limit)") \
  X(bus_park_limit_ip, INT, 16777216, 0, 68719476736, "in a cluster, bytes of frames all connections from one IP address may have held behind requests waiting on the bus (a signature nonce; each connection also at most 64 frames / 1 MiB); past it the connection whose frame would pass it is closed 4116 (0 = no limit)") \
  X(bus_park_limit_total, INT, 268435456, 0, 68719476736, "in a cluster, bytes of frames all connections of the server may have held behind requests waiting on the bus; past it the connection whose frame would pass it is closed 4116 (0 = no limit)") \
  X(bus_conv_coalesce_ms, INT, 50, 0, 10000, "in a cluster, milliseconds within which changes to one conversation past its first 4 are told to the other nodes as one (after the last of them) instead of one broadcast each (0 = each at once)") \
  X(will_limit_ip, INT, 16777216, 0, 68719476736, "bytes of will messages (content and mentioned ids) the sessions of one IP address may hold, besides 16 per session; past it {cmd: error} 4116 to the will (0 = no limit)") \
  X(will_limit_total, INT, 268435456, 0, 68719476736, "bytes of will messages all sessions of the server may hold; past it {cmd: error} 4116 to the will (0 = no limit)") \
  X(sign_login, BOOL, 0, 0, 1, "require a login signature (4102)")                                  \
  X(sign_conversation, BOOL, 0, 0, 1, "require signatures to start conversations and add/remove members (4302)") \
  X(sign_blacklist, BOOL, 0, 0, 1, "require signatures for blacklist changes (4546)")               \
  X(sign_ttl, INT, 21600, 1, 604800, "seconds a signature's timestamp stays valid (nonces are unique within it)") \
  X(sign_header_window, INT, 900, 1, 86400, "seconds an X-LC-Sign request signature's timestamp may be away from now, either side (401 past it)") \
  X(message_edit, BOOL, 1, 0, 1, "senders may edit their messages (patch/modify; 4406 when off)")   \
  X(message_recall, BOOL, 1, 0, 1, "senders may recall their messages (4407 when off)")            \
  X(session_ttl, INT, 17280, 60, 31536000, "seconds a session token (st) stays valid")              \
  X(temp_conv_ttl, INT, 86400, 60, 2592000, "default TTL of temporary conversations, seconds")      \
  X(conv_idle_ttl, INT, 31536000, 1, 315360000, "seconds without message or update before a conversation is deleted") \
  X(notif_ttl, INT, 604800, 60, 31536000, "seconds permanent notifications are kept for /rtm/notifications") \
  X(sweep_interval, INT, 600, 1, 86400, "seconds between expiry sweeps (conversations, notifications)") \
  X(hook_url, STR, "", 0, 0, "base URL of the LeanEngine-style hook server (POST {hook_url}/1.1/functions/<hook>)") \
  X(hook_key, STR, "", 0, 0, "sent as X-LC-Hook-Key with every hook call")                        \
  X(hooks, STR, "", 0, 0, "comma-separated hooks the app implements (_messageReceived, _conversationStart, …; \"all\")") \
  X(users_url, STR, "", 0, 0, "LeanCloud-style storage API that knows the app's users: rtm/sign asks GET {users_url}/1.1/users/me who a session token belongs to") \
  X(hook_timeout, INT, 5000, 100, 60000, "milliseconds before a hook call counts as failed")       \
  X(hook_fail_closed, BOOL, 0, 0, 1, "a failed hook rejects the operation instead of letting it through") \
  X(push_provider, STR, "none", 0, 0, "offline push (protocol.md §10): none, or a comma-separated list of webhook, apns, fcm") \
  X(push_template, STR, "", 0, 0, "push payload (JSON) when neither the _receiversOffline hook nor the message's pushData gives one; ${convId}, ${timestamp}, ${fromClientId} are filled in; empty: no push then") \
  X(push_retries, INT, 3, 0, 20, "retries of a failed push (exponential backoff) before it goes to <data_dir>/push-dead-letter.jsonl") \
  X(push_retry_delay, INT, 1000, 1, 600000, "milliseconds before the first retry of a push; doubled for each further one") \
  X(push_timeout, INT, 10000, 100, 120000, "milliseconds a push provider may take to answer")         \
  X(push_webhook_url, STR, "", 0, 0, "webhook provider: URL that gets one JSON POST per offline recipient") \
  X(push_webhook_secret, STR, "", 0, 0, "webhook provider: when set, requests carry X-Tern-Signature: sha256=<hex HMAC of the body>") \
  X(apns_key_path, STR, "", 0, 0, "APNs provider: the .p8 token-auth key (EC P-256, PEM)")          \
  X(apns_key_id, STR, "", 0, 0, "APNs provider: the key's id (JWT kid)")                              \
  X(apns_team_id, STR, "", 0, 0, "APNs provider: the team id (JWT iss)")                              \
  X(apns_topic, STR, "", 0, 0, "APNs provider: the app's bundle id (apns-topic)")                     \
  X(apns_host, STR, "api.push.apple.com", 0, 0, "APNs provider: host[:port]; http://host:port means cleartext HTTP/2 (tests)") \
  X(apns_sandbox_host, STR, "api.sandbox.push.apple.com", 0, 0, "APNs provider: host for payloads with _profile \"dev\"") \
  X(fcm_credentials_path, STR, "", 0, 0, "FCM provider: the service-account JSON key")               \
  X(fcm_project_id, STR, "", 0, 0, "FCM provider: project id (default: the key's project_id)")       \
  X(fcm_base_url, STR, "https://fcm.googleapis.com", 0, 0, "FCM provider: API base URL")              \
  X(fcm_token_url, STR, "", 0, 0, "FCM provider: OAuth2 token endpoint (default: the key's token_uri)") \
  X(commit_interval, INT, 500, 0, 100000, "microseconds between group commits while messages keep coming (fewer, fuller commits; 0: commit as soon as the last one ends)") \
  X(hot_interval, INT, 250000, 0, 10000000, "microseconds new messages collect in arrival order before they move into the table ordered by conversation (SQLite: a commit writes a few pages, not one per conversation; 0: move them at the next commit)") \
  X(store, STR, "sqlite", 0, 0, "where messages and conversations are stored: sqlite (data_dir/tern.db) or a PostgreSQL URI, postgres://user:password@host:port/database (docs/cluster.md)") \
  X(store_sync, STR, "normal", 0, 0, "SQLite synchronous mode: normal (survives kill -9) or full (survives power loss)") \
  X(log_level, STR, "info", 0, 0, "error, warn, info or debug")                                     \
  X(log_file, STR, "", 0, 0, "append the log to this file instead of stderr; reopened on SIGHUP (log rotation)") \
  X(log_format, STR, "text", 0, 0, "text (timestamp, level, event, key=value fields) or json (one object per line with stable keys: docs/operations.md)") \
  X(log_frames, BOOL, 0, 0, 1, "log every decoded frame at debug level")                            \
  X(trusted_proxies, STR, "", 0, 0, "comma-separated addresses or CIDRs (10.0.0.0/8, ::1) of reverse proxies whose X-Forwarded-For is believed: a request through one is logged and limited per IP as the client it names") \
  X(metrics_token, STR, "", 0, 0, "bearer token that may read /metrics besides the master key (Authorization: Bearer <token>); empty: the master key only")
// clang-format on

typedef struct {
#define X(name, type, def, min, max, help) CONFIG_FIELD_##type(name)
#define CONFIG_FIELD_STR(name) char *name;
#define CONFIG_FIELD_INT(name) long name;
#define CONFIG_FIELD_BOOL(name) int name;
  TERN_OPTIONS(X)
#undef X
} tern_config_t;

/* Fills defaults, then the file named by --config/TERN_CONFIG, the environment and argv.
 * Returns 0, 1 when --help was printed, or TERN_ECONFIG with a message on stderr. */
int config_load(tern_config_t *cfg, int argc, char **argv);
/* The same with the messages going to errs instead of stderr (SIGHUP logs them). */
int config_load_to(tern_config_t *cfg, int argc, char **argv, FILE *errs);
/* Parses one "name = value" assignment into cfg; used by the loaders and the fuzzer. */
int config_set(tern_config_t *cfg, const char *name, const char *value, char *err, size_t errlen);
/* Parses the text of a config file; err gets "line N: ..." on failure. */
int config_parse_text(tern_config_t *cfg, const char *text, char *err, size_t errlen);
void config_defaults(tern_config_t *cfg);
/* The uploaded files' directory: files_dir, or <data_dir>/files when it is empty. */
void config_files_dir(const tern_config_t *cfg, char *out, size_t outlen);
void config_free(tern_config_t *cfg);
void config_help(FILE *out);
/* 1 when a running ternd applies a new value of the option on SIGHUP (config_reload). */
int config_reloadable(const char *name);
/* SIGHUP: copies into cur every reloadable option whose value differs in next (a fresh
 * config_load); changed(name, applied, arg) hears of each differing option, applied 0 for
 * those that need a restart. The caller makes sure no other thread reads cur meanwhile. */
typedef void (*config_change_cb)(const char *name, int applied, void *arg);
void config_reload(tern_config_t *cur, const tern_config_t *next, config_change_cb changed, void *arg);
void config_markdown(FILE *out); /* the option table for docs/options.md */

#endif
