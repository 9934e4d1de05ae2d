/* tern/tern.h — libtern, the C client SDK of tern (LeanCloud realtime protocol).
 *
 * The API follows the iOS SDK guide (AVIMClient, AVIMConversation, AVIMConversationQuery,
 * typed messages, AVIMClientDelegate, AVIMSignatureDataSource); docs/sdk.md maps each call
 * of the guide to its C function here.
 *
 * Objects
 *   tern_t         one connection to a server (one WebSocket), shared by its clients, like
 *                  the JS SDK's Realtime. _new/_free.
 *   tern_client_t  one client id on that connection (AVIMClient). tern_client_get() returns
 *                  the same instance for the same id; clients live until tern_free().
 *   tern_conv_t    a conversation (AVIMConversation), owned by its client: the pointer stays
 *                  valid, and is updated in place, until tern_free().
 *   tern_msg_t     a message (AVIMMessage / AVIMTypedMessage). Messages you create are yours
 *                  (tern_msg_free); messages handed to callbacks are borrowed.
 *   tern_query_t   a conversation query builder (AVIMConversationQuery). _new/_free.
 *   tern_update_t  a conversation update builder (AVIMConversationUpdateBuilder). _new/_free.
 *
 * Event loop (hiredis-style)
 *   The core does no I/O by itself. It is driven through tern_io_t: an adapter connects TCP,
 *   feeds received bytes in, writes the bytes the core produces and fires its timer.
 *   <tern/uv.h> is the libuv adapter; <tern/sync.h> is a blocking layer over a private loop.
 *
 * Errors: functions return 0 or a negative code from <tern/error.h>; callbacks get `status`.
 *
 * Callbacks: every pointer passed to a callback (strings, messages, arrays, conversations
 *   for the duration the doc states) is borrowed for the duration of the callback; copy what
 *   you keep (tern_msg_dup). Callbacks run on the thread that drives the tern_t (the loop
 *   thread). A callback may call any libtern function, except tern_free() on its own tern_t.
 *
 * Threads: a tern_t and everything reached from it must be used from one thread at a time
 *   (the thread running its loop). Different tern_t may live on different threads. The
 *   read-only functions tern_strerror / tern_err_name / tern_version are thread-safe.
 *
 * Logging: the SDK never prints. Set tern_options_t.log_cb to receive log lines. */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern tern_t;
typedef struct tern_client tern_client_t;
typedef struct tern_conv tern_conv_t;
typedef struct tern_msg tern_msg_t;
typedef struct tern_query tern_query_t;
typedef struct tern_update tern_update_t;

const char *tern_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Connection                                                                                */

enum { TERN_LOG_ERROR = 0, TERN_LOG_WARN = 1, TERN_LOG_INFO = 2, TERN_LOG_DEBUG = 3 };
/* One log line (no trailing newline), borrowed. Called on the loop thread. */
typedef void (*tern_log_cb)(void *data, int level, const char *line);

typedef struct {
  const char *url;          /* required: ws://host[:port][/path] or wss://… (TLS) of the server */
  const char *app_id;       /* required */
  const char *app_key;      /* optional: sent as X-LC-Key with file uploads */
  const char *files_url;    /* optional: http:// or https:// base for uploads; default: the url
                               as http:// (https:// for wss://) */
  const char *cache_dir;    /* optional: directory of the per-client SQLite caches
                               (<cache_dir>/<app_id>-<client>.db); NULL = in-memory caches */
  int push_offline;         /* 0 (default): unread-count mode (lc.protobuf2.3, the guide's
                               AVIMUserOptionUseUnread); 1: the server pushes offline messages
                               at login (lc.protobuf2.1) */
  int ping_interval_ms;     /* echo keepalive period; default 180000 (as the JS SDK) */
  int watchdog_ms;          /* drop and reconnect after this long without input; default 380000 */
  int command_timeout_ms;   /* a request without reply fails with TERN_ETIMEDOUT; default 20000 */
  int reconnect_initial_ms; /* first reconnect delay, doubled per failure; default 1000 */
  int reconnect_max_ms;     /* cap of the delay; default 300000 (5 min) */
  int log_level;            /* most verbose level passed to log_cb; default TERN_LOG_INFO */
  tern_log_cb log_cb;
  void *log_data;
  /* TLS (wss://, https://): the server's certificate chain is verified against the system's
   * trust store, or only against the PEM certificates in tls_ca_file when set, and its name
   * against the URL's host; tls_insecure = 1 skips both checks (tests only). A failed check
   * fails the connection with TERN_ETLS (the reason is logged at TERN_LOG_ERROR). */
  const char *tls_ca_file;
  int tls_insecure;
} tern_options_t;

/* Fills defaults (all pointers NULL). */
void tern_options_init(tern_options_t *o);
/* Copies the options. Returns NULL on missing url/app_id, a url that is not ws:// or wss://,
 * a files_url that is not http:// or https://, or ENOMEM. */
tern_t *tern_new(const tern_options_t *o);
/* Closes every client without waiting for replies, fails pending requests with
 * TERN_ECANCELED (their callbacks run), tells the adapter to clean up, frees everything.
 * tern_free(NULL) is a no-op. Must not be called from a libtern callback of the same tern_t. */
void tern_free(tern_t *t);

/* Registers a custom typed-message type (a positive number, the guide's registerSubclass):
 * received messages with that _lctype go to on_message instead of on_common_message.
 * Returns TERN_EINVAL for type <= 0. */
int tern_register_message_type(tern_t *t, int type);

/* ---- event-loop integration: what an adapter implements and calls --------------------- */

typedef struct {
  void *data;
  /* Start a TCP connection. When done call tern_io_connected() or tern_io_closed(t, err). */
  void (*connect)(void *data, const char *host, int port);
  /* The core has bytes to send (tern_io_output). Called again only after the queue drained. */
  void (*want_write)(void *data);
  /* Close the TCP connection; then call tern_io_closed(). */
  void (*close)(void *data);
  /* (Re)arm the one wake-up timer to fire in delay_ms (>= 0), or disarm it (-1). */
  void (*timer)(void *data, int64_t delay_ms);
  /* Run one HTTP exchange: connect to host:port, send `req`, and deliver everything read
   * until EOF with tern_io_http_done(t, id, status, bytes, n). Used for file uploads. */
  void (*http)(void *data, uint64_t id, const char *host, int port, const void *req, size_t len);
  /* tern_free() is running: release the adapter (asynchronously is fine). No calls into
   * the tern_t may follow. */
  void (*cleanup)(void *data);
} tern_io_t;

/* Attaches an adapter (copied). Must be done once, before the first client opens. */
int tern_attach(tern_t *t, const tern_io_t *io);
void tern_io_connected(tern_t *t);
/* Received bytes. May run callbacks. */
void tern_io_input(tern_t *t, const void *p, size_t n);
/* Bytes waiting to be written: *p, returns the count (0 = nothing). Then tern_io_written(). */
size_t tern_io_output(tern_t *t, const void **p);
void tern_io_written(tern_t *t, size_t n);
/* The TCP connection ended (err 0 = clean EOF, else a negative code; TERN_ETLS when the
 * TLS handshake failed: a client opening then fails with TERN_ETLS, not TERN_ECONNECT). */
void tern_io_closed(tern_t *t, int err);
/* What an adapter needs for TLS. Returns 1 when the connections it opens for the WebSocket
 * (http = 0: a wss:// url) or for uploads (http = 1: an https:// files_url, or none with a
 * wss:// url) must speak TLS, 0 for plain TCP; *ca_file (may be NULL: the system's trust
 * store) and *insecure tell how to check the server (tern_options_t.tls_ca_file). With TLS
 * the adapter sends the host as SNI, checks the chain and the host name, and only then calls
 * tern_io_connected(); the core sees plaintext only. */
int tern_io_tls(const tern_t *t, int http, const char **ca_file, int *insecure);
/* A log line from the adapter, through the tern_t's log_cb and level (the SDK never prints). */
void tern_io_log(tern_t *t, int level, const char *line);
/* The timer fired. */
void tern_io_timer(tern_t *t);
void tern_io_http_done(tern_t *t, uint64_t id, int status, const void *resp, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Clients (AVIMClient)                                                                      */

typedef enum {
  TERN_CLIENT_CLOSED = 0,
  TERN_CLIENT_OPENING,
  TERN_CLIENT_OPEN,
  TERN_CLIENT_PAUSED,   /* connection lost; a reconnect is scheduled */
  TERN_CLIENT_RESUMING, /* reconnecting / re-logging in */
} tern_client_status_t;

/* AVIMClientDelegate. Any member may be NULL. Notification order is the server's order. */
typedef struct {
  /* conversation:didReceiveTypedMessage: — built-in types and registered custom types */
  void (*on_message)(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *msg, void *data);
  /* conversation:didReceiveCommonMessage: — anything else (raw content) */
  void (*on_common_message)(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *msg, void *data);
  /* conversation:membersAdded:byClientId: */
  void (*on_members_added)(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by,
                           void *data);
  /* conversation:membersRemoved:byClientId: */
  void (*on_members_removed)(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by,
                             void *data);
  /* conversation:invitedByClientId: (also when this client joined or created it) */
  void (*on_invited)(tern_client_t *c, tern_conv_t *conv, const char *by, void *data);
  /* conversation:kickedByClientId: (also when this client quit) */
  void (*on_kicked)(tern_client_t *c, tern_conv_t *conv, const char *by, void *data);
  /* conversation:messageDelivered: — msg carries id, conversation, delivered_at; it has the
   * content too when this process sent it */
  void (*on_message_delivered)(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *msg, void *data);
  /* conversation:didReceiveUnread: */
  void (*on_unread)(tern_client_t *c, tern_conv_t *conv, int unread, void *data);
  /* another member updated the conversation; attr_json is the change as sent */
  void (*on_conv_updated)(tern_client_t *c, tern_conv_t *conv, const char *attr_json, const char *by, void *data);
  /* imClientPaused: / imClientResuming: / imClientResumed: */
  void (*on_paused)(tern_client_t *c, void *data);
  void (*on_resuming)(tern_client_t *c, void *data);
  void (*on_resumed)(tern_client_t *c, void *data);
  /* client:didOfflineWithError: — the server ended the session (err = -4111 when another
   * device logged in with the same tag, -4115 kicked by the app). The client is closed. */
  void (*on_offline)(tern_client_t *c, int err, void *data);
} tern_delegate_t;

/* AVIMSignature. Fill signature (hex), timestamp and nonce; or return a negative code. */
typedef struct {
  char signature[128];
  int64_t timestamp;
  char nonce[128];
} tern_signature_t;
/* AVIMSignatureDataSource. action is "open" (login), "start" (create), "join" (this client
 * joins), "invite" (add others) or "kick" (remove others, or quit); conv_id is NULL for
 * open/start; ids are the sorted target ids. The server's signature string uses "invite"
 * for join and "kick" for quit (protocol.md §5). Called synchronously on the loop thread
 * before the command is sent. Return 0 to send with the signature, or a negative code to
 * fail the operation with TERN_ESIGNATURE. */
typedef int (*tern_signature_cb)(tern_client_t *c, const char *conv_id, const char *action, const char *const *ids,
                                 size_t n, tern_signature_t *out, void *data);

/* Same client_id → same instance (the tag of the first call wins). tag may be NULL;
 * "default" means no tag. Returns NULL for an empty or > 64 character id, or ENOMEM. */
tern_client_t *tern_client_get(tern_t *t, const char *client_id, const char *tag);
const char *tern_client_id(const tern_client_t *c);
const char *tern_client_tag(const tern_client_t *c);
tern_t *tern_client_tern(const tern_client_t *c);
tern_client_status_t tern_client_status(const tern_client_t *c);
/* Copies *d. data is passed to every delegate call. */
void tern_client_set_delegate(tern_client_t *c, const tern_delegate_t *d, void *data);
void tern_client_set_signature_cb(tern_client_t *c, tern_signature_cb cb, void *data);
/* messageQueryCacheEnabled; default on. */
void tern_client_set_message_cache(tern_client_t *c, int enabled);

typedef void (*tern_client_cb)(tern_client_t *c, int status, void *data);

/* AVIMClientOpenOption. */
typedef struct {
  int force; /* 1: log in even if this device was kicked by a same-tag login */
} tern_open_options_t;

/* openWithCallback: / openWithOption:callback:. opt may be NULL (non-forced). Returns
 * TERN_EINVAL when already open or opening, TERN_ECONFIG when no adapter is attached.
 * cb (may be NULL) gets 0, or why the login failed (-4111 when another device holds the
 * tag, a network error when the server could not be reached, TERN_ECANCELED on close). */
int tern_client_open(tern_client_t *c, const tern_open_options_t *opt, tern_client_cb cb, void *data);
/* closeWithCallback:. The server forgets the session; the client may be opened again. */
int tern_client_close(tern_client_t *c, tern_client_cb cb, void *data);

/* ---------------------------------------------------------------------------------------- */
/* Conversations (AVIMConversation)                                                          */

enum {
  TERN_CONV_NONE = 0,      /* AVIMConversationOptionNone */
  TERN_CONV_TRANSIENT = 1, /* AVIMConversationOptionTransient: chat room */
  TERN_CONV_UNIQUE = 2,    /* AVIMConversationOptionUnique */
};

typedef void (*tern_conv_cb)(tern_client_t *c, tern_conv_t *conv, int status, void *data);
typedef void (*tern_conv_done_cb)(tern_conv_t *conv, int status, void *data);
typedef void (*tern_count_cb)(tern_conv_t *conv, int status, int count, void *data);

/* createConversationWithName:clientIds:attributes:options:callback:. members excludes the
 * creator (it is added); attrs_json is a JSON object or NULL. conv is NULL on failure. */
int tern_client_create_conv(tern_client_t *c, const char *name, const char *const *members, size_t n,
                            const char *attrs_json, unsigned options, tern_conv_cb cb, void *data);
/* A conversation known to this client (created, queried, or seen in a notification), else NULL. */
tern_conv_t *tern_client_conv(tern_client_t *c, const char *conv_id);

const char *tern_conv_id(const tern_conv_t *conv);
tern_client_t *tern_conv_client(const tern_conv_t *conv);
const char *tern_conv_name(const tern_conv_t *conv);    /* NULL if unnamed */
const char *tern_conv_creator(const tern_conv_t *conv); /* NULL if unknown */
/* Members as known locally; *n gets the count. Valid until the next change of the conv. */
const char *const *tern_conv_members(const tern_conv_t *conv, size_t *n);
/* The attributes object as JSON text ("{}" when none); valid until the next change. */
const char *tern_conv_attributes(const tern_conv_t *conv);
/* One attribute as JSON text, or NULL. Valid until the next change of the conv. */
const char *tern_conv_attribute(const tern_conv_t *conv, const char *key);
int tern_conv_is_transient(const tern_conv_t *conv);
int tern_conv_is_unique(const tern_conv_t *conv);
int tern_conv_is_muted(const tern_conv_t *conv);       /* this client is in `mu` */
int64_t tern_conv_created_at(const tern_conv_t *conv); /* ms, 0 if unknown */
int64_t tern_conv_updated_at(const tern_conv_t *conv);
int64_t tern_conv_last_message_at(const tern_conv_t *conv);
int tern_conv_unread_count(const tern_conv_t *conv);
/* Last message seen (from unread, sends, receipts or a query with last message), or NULL. */
const tern_msg_t *tern_conv_last_message(const tern_conv_t *conv);

int tern_conv_join(tern_conv_t *conv, tern_conv_done_cb cb, void *data);
int tern_conv_add_members(tern_conv_t *conv, const char *const *ids, size_t n, tern_conv_done_cb cb, void *data);
int tern_conv_quit(tern_conv_t *conv, tern_conv_done_cb cb, void *data);
int tern_conv_remove_members(tern_conv_t *conv, const char *const *ids, size_t n, tern_conv_done_cb cb, void *data);
/* countMembersWithCallback: (online count for chat rooms). */
int tern_conv_count_members(tern_conv_t *conv, tern_count_cb cb, void *data);
int tern_conv_mute(tern_conv_t *conv, tern_conv_done_cb cb, void *data);
int tern_conv_unmute(tern_conv_t *conv, tern_conv_done_cb cb, void *data);
/* markAsReadInBackground: clears the unread count here and on the server. */
int tern_conv_read(tern_conv_t *conv);

/* ---- update builder (AVIMConversationUpdateBuilder) ---- */

tern_update_t *tern_update_new(void);
void tern_update_free(tern_update_t *u);
/* updateBuilder.name = … */
int tern_update_set_name(tern_update_t *u, const char *name);
/* updateBuilder.attributes = … (a JSON object): the whole attribute object is replaced by it
 * (plus the set/remove calls below). Pass tern_conv_attributes(conv) to start from the current
 * ones, as the guide does. Without it, only the keys you touch change on the server. */
int tern_update_set_attributes(tern_update_t *u, const char *attrs_json);
/* setObject:forKey: — value is JSON text ("\"public\"", "5", "true", "{…}"). */
int tern_update_set_attr(tern_update_t *u, const char *key, const char *value_json);
/* removeObjectForKey: */
int tern_update_remove_attr(tern_update_t *u, const char *key);
/* update:callback:. The builder is copied; free it when you like. */
int tern_conv_update(tern_conv_t *conv, const tern_update_t *u, tern_conv_done_cb cb, void *data);

/* ---------------------------------------------------------------------------------------- */
/* Messages (AVIMMessage, AVIMTypedMessage and its subclasses)                               */

enum {
  TERN_MSG_COMMON = 0, /* not a typed message: raw content */
  TERN_MSG_TEXT = -1,
  TERN_MSG_IMAGE = -2,
  TERN_MSG_AUDIO = -3,
  TERN_MSG_VIDEO = -4,
  TERN_MSG_LOCATION = -5,
  TERN_MSG_FILE = -6,
};

typedef enum {
  TERN_STATUS_NONE = 0,
  TERN_STATUS_SENDING,
  TERN_STATUS_SENT,
  TERN_STATUS_DELIVERED,
  TERN_STATUS_FAILED,
} tern_msg_status_t;

typedef enum { TERN_IO_IN = 1, TERN_IO_OUT = 2 } tern_msg_io_t;

/* AVIMMessage messageWithContent: — an untyped message. */
tern_msg_t *tern_msg_new_common(const char *content);
/* AVIMTextMessage messageWithText:attributes:. attrs_json may be NULL. */
tern_msg_t *tern_msg_new_text(const char *text, const char *attrs_json);
/* A typed message of any type (custom positive types included) with optional text. */
tern_msg_t *tern_msg_new_typed(int type, const char *text, const char *attrs_json);
/* Image/audio/video/file from a local path (attachedFilePath:): uploaded when sent, then
 * carries url, objId and metadata (name, format, size; width/height for images). */
tern_msg_t *tern_msg_new_file_path(int type, const char *text, const char *path, const char *attrs_json);
/* Image/audio/video/file from a URL (fileWithURL:): carries the URL only. */
tern_msg_t *tern_msg_new_file_url(int type, const char *text, const char *url, const char *attrs_json);
/* AVIMLocationMessage messageWithText:latitude:longitude:attributes: */
tern_msg_t *tern_msg_new_location(const char *text, double latitude, double longitude, const char *attrs_json);
tern_msg_t *tern_msg_dup(const tern_msg_t *m);
void tern_msg_free(tern_msg_t *m);

/* Setters for messages you own. value_json is JSON text; NULL removes. */
int tern_msg_set_text(tern_msg_t *m, const char *text);
int tern_msg_set_attributes(tern_msg_t *m, const char *attrs_json);
/* A top-level field of a typed message (custom message classes' fields). */
int tern_msg_set_field(tern_msg_t *m, const char *key, const char *value_json);

/* Getters: strings are owned by the message (NULL when absent). */
int tern_msg_type(const tern_msg_t *m); /* mediaType */
const char *tern_msg_text(const tern_msg_t *m);
const char *tern_msg_attributes(const tern_msg_t *m); /* JSON object text */
/* A top-level field as JSON text, malloc'd: free() it. NULL when absent. */
char *tern_msg_field(const tern_msg_t *m, const char *key);
/* The content as sent on the wire (typed messages: their JSON). */
const char *tern_msg_content(const tern_msg_t *m);
const char *tern_msg_id(const tern_msg_t *m);
const char *tern_msg_conv_id(const tern_msg_t *m);
const char *tern_msg_from(const tern_msg_t *m);  /* clientId */
int64_t tern_msg_timestamp(const tern_msg_t *m); /* sendTimestamp, ms */
int64_t tern_msg_delivered_at(const tern_msg_t *m);
tern_msg_status_t tern_msg_status(const tern_msg_t *m);
tern_msg_io_t tern_msg_io_type(const tern_msg_t *m);
int tern_msg_is_transient(const tern_msg_t *m);
const char *tern_msg_file_url(const tern_msg_t *m);
const char *tern_msg_file_obj_id(const tern_msg_t *m);
const char *tern_msg_file_name(const tern_msg_t *m);
const char *tern_msg_file_format(const tern_msg_t *m);
int64_t tern_msg_file_size(const tern_msg_t *m); /* bytes, -1 if unknown */
int tern_msg_file_width(const tern_msg_t *m);    /* pixels, -1 if unknown */
int tern_msg_file_height(const tern_msg_t *m);
double tern_msg_file_duration(const tern_msg_t *m); /* seconds, -1 if unknown */
double tern_msg_latitude(const tern_msg_t *m);
double tern_msg_longitude(const tern_msg_t *m);

/* sendMessage:options:callback: */
enum {
  TERN_SEND_TRANSIENT = 1, /* AVIMMessageSendOptionTransient */
  TERN_SEND_RECEIPT = 2,   /* AVIMMessageSendOptionRequestReceipt */
};
/* sent: the message as sent (id, timestamp, status, io type; uploaded file fields). */
typedef void (*tern_send_cb)(tern_conv_t *conv, const tern_msg_t *sent, int status, void *data);
/* The message is copied (and the file read) at call time: free yours right away if you like. */
int tern_conv_send(tern_conv_t *conv, const tern_msg_t *msg, unsigned options, tern_send_cb cb, void *data);

/* ---- history ---- */

/* msgs: oldest first, borrowed. from_cache: 1 when served by the local cache. */
typedef void (*tern_history_cb)(tern_conv_t *conv, const tern_msg_t *const *msgs, size_t n, int from_cache, int status,
                                void *data);
/* queryMessagesWithLimit: — the newest `limit` (1…1000, default 20 when 0). Online: from the
 * server (and cached); offline with the cache on: from the cache. */
int tern_conv_query_messages(tern_conv_t *conv, int limit, tern_history_cb cb, void *data);
/* queryMessagesBeforeId:timestamp:limit: — served from the cache when it holds `limit`
 * contiguous messages before that one (or the conversation's first), else from the server. */
int tern_conv_query_messages_before(tern_conv_t *conv, const char *msg_id, int64_t timestamp, int limit,
                                    tern_history_cb cb, void *data);
/* queryMessagesFromServerWithLimit: — always the server. */
int tern_conv_query_messages_from_server(tern_conv_t *conv, int limit, tern_history_cb cb, void *data);

/* ---------------------------------------------------------------------------------------- */
/* Conversation queries (AVIMConversationQuery)                                              */

/* AVIMAttr(@"topic"): the attr. prefix for custom attributes, for string literals. */
#define TERN_ATTR(key) "attr." key

typedef enum {
  TERN_EQ = 0, /* equalTo */
  TERN_NE,     /* notEqualTo */
  TERN_GT,     /* greaterThan */
  TERN_GTE,    /* greaterThanOrEqualTo */
  TERN_LT,     /* lessThan */
  TERN_LTE,    /* lessThanOrEqualTo */
} tern_cmp_t;

typedef enum {
  TERN_CACHE_ELSE_NETWORK = 0, /* kAVCachePolicyCacheElseNetwork (default) */
  TERN_CACHE_IGNORE,           /* kAVCachePolicyIgnoreCache: network, nothing cached */
  TERN_CACHE_ONLY,             /* kAVCachePolicyCacheOnly */
  TERN_NETWORK_ONLY,           /* kAVCachePolicyNetworkOnly: network, result cached */
  TERN_NETWORK_ELSE_CACHE,     /* kAVCachePolicyNetworkElseCache */
  TERN_CACHE_THEN_NETWORK,     /* kAVCachePolicyCacheThenNetwork: callback twice */
} tern_cache_policy_t;

/* [client conversationQuery]. NULL on ENOMEM. */
tern_query_t *tern_query_new(tern_client_t *c);
void tern_query_free(tern_query_t *q);
/* whereKey:<op>: with a JSON value ("\"movie\"", "18", "true", {"__type":"Date",…}).
 * Several conditions on one key combine ({"$gt":1,"$lt":9}); all keys are ANDed. */
int tern_query_where(tern_query_t *q, const char *key, tern_cmp_t op, const char *value_json);
int tern_query_where_str(tern_query_t *q, const char *key, tern_cmp_t op, const char *value);
int tern_query_where_int(tern_query_t *q, const char *key, tern_cmp_t op, int64_t value);
int tern_query_where_double(tern_query_t *q, const char *key, tern_cmp_t op, double value);
int tern_query_where_bool(tern_query_t *q, const char *key, tern_cmp_t op, int value);
int tern_query_where_date(tern_query_t *q, const char *key, tern_cmp_t op, int64_t ms);
/* whereKey:matchesRegex: (options: NULL or "i", "m", …) */
int tern_query_matches_regex(tern_query_t *q, const char *key, const char *regex, const char *options);
/* whereKey:containsString: */
int tern_query_contains_string(tern_query_t *q, const char *key, const char *substring);
/* whereKey:containsAllObjectsInArray: (strings) */
int tern_query_contains_all(tern_query_t *q, const char *key, const char *const *values, size_t n);
/* query.limit (default 10); skip; order: "-lm", "name,-createdAt". */
int tern_query_set_limit(tern_query_t *q, int limit);
int tern_query_set_skip(tern_query_t *q, int skip);
int tern_query_set_order(tern_query_t *q, const char *order);
/* Omit members in results / include the last message. */
int tern_query_set_compact(tern_query_t *q, int on);
int tern_query_set_with_last_message(tern_query_t *q, int on);
int tern_query_set_cache_policy(tern_query_t *q, tern_cache_policy_t policy);
/* cacheMaxAge in seconds; default 3600. */
int tern_query_set_cache_max_age(tern_query_t *q, int seconds);
/* The where JSON as it will be sent (malloc'd; free()). */
char *tern_query_where_json(const tern_query_t *q);

/* convs: borrowed array of conversations (the conversations themselves live on).
 * from_cache: 1 when the result came from the local cache. */
typedef void (*tern_query_cb)(tern_client_t *c, tern_conv_t *const *convs, size_t n, int from_cache, int status,
                              void *data);
/* findConversationsWithCallback:. The query is copied; free it when you like. */
int tern_query_find(const tern_query_t *q, tern_query_cb cb, void *data);
/* getConversationById:callback: (uses the query's cache policy). Not found: conv NULL and
 * status TERN_ENOENT. */
int tern_query_get(const tern_query_t *q, const char *conv_id, tern_conv_cb cb, void *data);

#ifdef __cplusplus
}
#endif
#endif
