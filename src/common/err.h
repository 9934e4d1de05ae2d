/* err.h — the two error tables of tern.
 *
 * Internal errors are negative TERN_E* values returned by every fallible function
 * (0 = success); their table is include/tern/error_map.h's core rows, which libtern returns
 * too. Protocol errors are the LeanCloud 4xxx codes with their NAMEs, which the SDKs show
 * to users verbatim. Both are X-macro tables so that the enum, the name and the
 * description can never drift apart (libuv's UV_ERRNO_MAP). */
#ifndef TERN_ERR_H
#define TERN_ERR_H

#include "tern/error_map.h" /* the one table of negative codes, shared with libtern */

#define TERN_ERRNO_MAP(X) TERN_CORE_ERRNO_MAP(X)

enum {
#define X(name, val, desc) TERN_##name = (val),
  TERN_ERRNO_MAP(X)
#undef X
};

const char *tern_strerror(int err);
const char *tern_err_name(int err);

/* Protocol error codes (protocol.md §6): code, NAME (sent as `reason`), description. */
/* a hand-laid table, one row a line however long: clang-format leaves it alone */
// clang-format off
#define LC_ERROR_MAP(X)                                                                  \
  X(4100, APP_NOT_AVAILABLE, "app missing or IM disabled")                               \
  X(4102, SIGNATURE_FAILED, "login signature invalid")                                   \
  X(4103, INVALID_LOGIN, "malformed client id")                                          \
  X(4105, SESSION_REQUIRED, "command before session open")                               \
  X(4106, BLACKLISTED, "client banned from IM")                                          \
  X(4107, READ_TIMEOUT, "no data from client for too long")                              \
  X(4108, LOGIN_TIMEOUT, "no session opened in time")                                    \
  X(4109, FRAME_TOO_LONG, "frame or message too long")                                   \
  X(4110, INVALID_ORIGIN, "origin not allowed")                                          \
  X(4111, SESSION_CONFLICT, "session conflict")                                          \
  X(4112, SESSION_TOKEN_EXPIRED, "session token expired or invalid")                     \
  X(4113, APP_QUOTA_EXCEEDED, "app quota exceeded")                                      \
  X(4114, UNPARSEABLE_RAW_MESSAGE, "undecodable command")                                \
  X(4115, KICKED_BY_APP, "kicked by the app")                                            \
  X(4116, MESSAGE_SENT_QUOTA_EXCEEDED, "sending too fast")                               \
  X(4200, INTERNAL_ERROR, "internal server error")                                       \
  X(4201, SEND_MESSAGE_TIMEOUT, "send timed out")                                        \
  X(4300, CONVERSATION_INTERNAL_ERROR, "conversation internal error")                    \
  X(4301, CONVERSATION_API_FAILED, "conversation storage failed")                        \
  X(4302, CONVERSATION_SIGNATURE_FAILED, "conversation signature invalid")               \
  X(4303, CONVERSATION_NOT_FOUND, "conversation not found")                              \
  X(4304, CONVERSATION_FULL, "conversation full")                                        \
  X(4305, CONVERSATION_REJECTED_BY_APP, "rejected by a conversation hook")               \
  X(4306, CONVERSATION_UPDATE_FAILED, "conversation update failed")                      \
  X(4307, CONVERSATION_READ_ONLY, "conversation is read-only")                           \
  X(4308, CONVERSATION_NOT_ALLOWED, "not allowed in this conversation")                  \
  X(4309, CONVERSATION_UPDATE_REJECTED, "updater is not a member")                       \
  X(4310, CONVERSATION_QUERY_FAILED, "conversation query failed")                        \
  X(4311, CONVERSATION_LOG_FAILED, "history query failed")                               \
  X(4312, CONVERSATION_LOG_REJECTED, "history query by a non-member")                    \
  X(4313, SYSTEM_CONVERSATION_REQUIRED, "system conversation required")                  \
  X(4314, NORMAL_CONVERSATION_REQUIRED, "normal conversation required")                  \
  X(4315, CONVERSATION_BLACKLISTED, "temporarily blocked from sending")                  \
  X(4316, TRANSIENT_CONVERSATION_REQUIRED, "chat room required")                         \
  X(4317, CONVERSATION_MEMBERSHIP_REQUIRED, "membership required")                       \
  X(4318, CONVERSATION_API_QUOTA_EXCEEDED, "conversation API quota exceeded")            \
  X(4320, CONVERSATION_OPERATION_UNAUTHORIZED, "role too low")                           \
  X(4321, UNKNOWN_CONVERSATION_ROLE, "unknown role")                                     \
  X(4322, CONVERSATION_MEMBER_IN_ROLE_FULL, "too many members in role")                  \
  X(4323, TEMPORARY_CONVERSATION_EXPIRED, "temporary conversation expired")              \
  X(4324, CONVERSATION_NEED_OWNER, "operation would leave no owner")                     \
  X(4325, CONVERSATION_MEMBER_INFO_FEATURE_DISABLED, "member roles disabled")            \
  X(4401, INVALID_MESSAGING_TARGET, "conversation missing or sender not a member")       \
  X(4402, MESSAGE_REJECTED_BY_APP, "message rejected by a hook")                         \
  X(4403, MESSAGE_OWNERSHIP_REQUIRED, "only the sender may modify a message")            \
  X(4404, MESSAGE_NOT_FOUND, "message not found")                                        \
  X(4405, MESSAGE_UPDATE_REJECTED_BY_APP, "message update rejected by a hook")           \
  X(4406, MESSAGE_EDIT_DISABLED, "message edit disabled")                                \
  X(4407, MESSAGE_RECALL_DISABLED, "message recall disabled")                            \
  X(4408, MESSAGE_MODIFIED_BY_CENSORSHIP, "message modified by the filter")              \
  X(4543, BLACKLIST_FULL, "blacklist full")                                              \
  X(4544, BLACKLIST_FEATURE_DISABLED, "blacklist disabled")                              \
  X(4546, BLACKLIST_SIGNATURE_FAILED, "blacklist signature invalid")                     \
  X(4548, BLOCKED_BY_CONV, "client is on the conversation's blacklist")                  \
  X(4561, SILIENCED_MEMBER_LIST_FULL, "muted member list full")                          \
  X(4563, SILIENCED, "sender is muted in this conversation")
// clang-format on

typedef enum {
#define X(code, name, desc) LC_##name = (code),
  LC_ERROR_MAP(X)
#undef X
} lc_error_t;

/* The NAME of a protocol error (e.g. "CONVERSATION_NOT_FOUND"); "UNKNOWN_ERROR" if unknown. */
const char *lc_error_name(int code);
const char *lc_error_desc(int code);

#endif
