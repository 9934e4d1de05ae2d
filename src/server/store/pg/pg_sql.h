/* pg_sql.h — every fixed statement of the PostgreSQL backend, X(id, sql): pg_int.h makes
 * the PS_* ids of them, pg_conn.c the table, and a connection prepares each at its first
 * use. SQLite's statements (store_sqlite.c) in PostgreSQL's dialect: $n parameters,
 * ON CONFLICT for INSERT OR IGNORE / OR REPLACE, GREATEST for the scalar max, NULLS LAST
 * where SQLite's NULLs sort low. Strings are COLLATE "C" in the schema, so orders and
 * ranges (client > $2, ORDER BY cid) are bytewise as on SQLite. No user input is ever SQL
 * text: it is always a parameter. */
/* no include guard: included under different definitions of X */

#define PG_VIS(n) " AND (readers IS NULL OR sender = $" n " OR strpos(readers, chr(31) || $" n " || chr(31)) > 0)"
#define PG_LAST_TS(id) "(SELECT ts FROM msg WHERE msg.conv = " id " ORDER BY ts DESC, seq DESC LIMIT 1)"

/* ---- writer */
X(INS_CONV, "INSERT INTO conv (cid, kind, creator, unique_id, created_at, updated_at, expire_at, member_count, doc)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id")
/* a new member has read and received everything sent before it joined ($4, $5) */
X(INS_MEMBER, "INSERT INTO member (conv, client, joined_at, read_ts, read_seq, ack_ts, ack_seq)"
              " VALUES ($1, $2, $3, $4, $5, $4, $5) ON CONFLICT DO NOTHING")
X(DEL_MEMBER, "DELETE FROM member WHERE conv = $1 AND client = $2")
X(TOUCH_CONVS, "UPDATE conv SET member_count = (SELECT count(*) FROM member WHERE member.conv = conv.id),"
               " updated_at = GREATEST(conv.updated_at, v.ts)"
               " FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::bigint[]) AS ts) v WHERE conv.id = v.id")
X(FIND_UNIQUE, "SELECT cid, created_at FROM conv WHERE unique_id = $1")
/* A message insert that may hold a message asking for receipts (every one but INS_MSGS,
 * which takes only batches that do not) also notes, in conv_rcp, the conversations of the
 * rows it inserted that asked (flags & 2: store.h conv_row_t.rcp) — in the statement, not a
 * trigger: a PL/pgSQL call per such row would cost more than the row. */
#define PG_NOTE_RCP                                                                                                    \
  " r AS (INSERT INTO conv_rcp SELECT DISTINCT conv FROM i WHERE (flags & 2) <> 0 ON CONFLICT DO NOTHING)"
/* a key taken: no row, and the job fails alone (no error, so the batch goes on) */
X(INS_MSG,
  "WITH i AS (INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts, readers, dt)"
  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING conv, flags)," PG_NOTE_RCP
  " SELECT 1 FROM i")
/* a possible resend (job_msg_insert_t.dt_since): stored unless the sender's message with dt
 * $12 is among the conversation's newest $14 messages since $13 (MSG_BY_DT's rule), in one
 * statement (the writer's pipeline goes on). One row: that message's mid and ts (NULL: none),
 * and how many rows were inserted (0 with no mid: the key was taken) */
X(INS_MSG_UNLESS_DT,
  "WITH d AS (SELECT mid, ts FROM (SELECT mid, ts, sender, dt FROM msg WHERE conv = $1::bigint AND ts >= $13::bigint"
  " ORDER BY ts DESC, seq DESC LIMIT $14::bigint) m WHERE sender = $5::text AND dt = $12::bigint LIMIT 1),"
  " i AS (INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts, readers, dt)"
  " SELECT $1::bigint, $2::bigint, $3::bigint, $4::text, $5::text, $6::bytea, $7::int, $8::text, $9::int,"
  " $10::bigint, $11::text, $12::bigint WHERE NOT EXISTS (SELECT 1 FROM d) ON CONFLICT DO NOTHING"
  " RETURNING conv, flags)," PG_NOTE_RCP " SELECT (SELECT mid FROM d), (SELECT ts FROM d), (SELECT count(*) FROM i)")
/* many messages in one statement (pg_writer.c: msgs_queue): the rows it inserted come back,
 * a key that was taken does not; a batch none of whose messages asks for receipts takes the
 * one without PG_NOTE_RCP (the CTE cost ~7% of PostgreSQL's CPU a message flat out). The
 * _GATED ones carry the batch's order check (PG_ORDER_GATE, $13..$15) when they are its first
 * message statement. */
#define PG_INS_MSGS(gate)                                                                                              \
  "INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts, readers, dt)"                 \
  " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bytea[],"               \
  " $7::int[], $8::text[], $9::int[], $10::bigint[], $11::text[], $12::bigint[])" gate " ON CONFLICT DO NOTHING"
#define PG_INS_MSGS_RCP(gate)                                                                                          \
  "WITH i AS (" PG_INS_MSGS(gate) " RETURNING conv, ts, seq, flags)," PG_NOTE_RCP " SELECT conv, ts, seq FROM i"
/* The order check (pg_writer.c, "message order across writers"), in a statement's WHERE: a
 * scalar subquery PostgreSQL runs once, before the statement's first row, in the statement's
 * snapshot — taken after the order locks of the statement before it. Arrays $a, $b, $c: each
 * conversation's first key of the batch (conv, ts, seq). A conversation whose newest stored
 * key is not past it fails the statement (tern_order_behind: SQLSTATE TN001); the flight
 * aborts and nothing of it commits. Plain SQL in the insert, not the PL/pgSQL function
 * tern_order_past in a statement of its own: that cost PostgreSQL 215–260 µs of CPU more a
 * commit of seven conversations, this 50–70 (bench/README.md, "The order check in the
 * insert"). */
#define PG_ORDER_GATE(a, b, c)                                                                                         \
  " WHERE (SELECT CASE WHEN EXISTS (SELECT 1 FROM unnest($" a "::bigint[], $" b "::bigint[], $" c "::bigint[])"        \
  " o(conv, ts, seq) JOIN LATERAL (SELECT m.ts, m.seq FROM msg m WHERE m.conv = o.conv ORDER BY m.ts DESC, m.seq DESC" \
  " LIMIT 1) n ON true WHERE (n.ts, n.seq) >= (o.ts, o.seq)) THEN tern_order_behind() ELSE true END)"
X(INS_MSGS, PG_INS_MSGS("") " RETURNING conv, ts, seq")
X(INS_MSGS_GATED, PG_INS_MSGS(PG_ORDER_GATE("13", "14", "15")) " RETURNING conv, ts, seq")
X(INS_MSGS_RCP, PG_INS_MSGS_RCP(""))
X(INS_MSGS_RCP_GATED, PG_INS_MSGS_RCP(PG_ORDER_GATE("13", "14", "15")))
/* message order across writers (pg_writer.c: order_lock): a transaction-scoped lock per
 * conversation, taken in the order of the array (sorted ids: two writers never wait on each
 * other in a cycle), then — in a statement of its own, whose snapshot is taken after the
 * locks — the newest stored key of each */
X(ORDER_LOCK, "SELECT pg_advisory_xact_lock(1952805486, (v % 2147483647)::int) FROM unnest($1::bigint[]) v")
/* or, in the same flight as the batch (no round trip of its own), after the locks: fails
 * (PG_ORDER_BEHIND) if a conversation's first key of the batch is not past its newest — in
 * the batch's first message statement (INS_MSGS_GATED), or alone when that statement is a
 * possible resend's (INS_MSG_UNLESS_DT) */
X(ORDER_PAST, "SELECT 1" PG_ORDER_GATE("1", "2", "3"))
X(ORDER_NEWEST, "SELECT v, l.ts, l.seq FROM unnest($1::bigint[]) v LEFT JOIN LATERAL (SELECT ts, seq FROM msg"
                " WHERE msg.conv = v ORDER BY ts DESC, seq DESC LIMIT 1) l ON true")
/* the rows UPD_LM and TOUCH_CONVS will update, locked in the order of their ids: no two
 * writers wait on each other in a cycle (pg_writer.c: notes_flush) */
X(LOCK_CONVS, "SELECT id FROM conv WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE")
X(UPD_LM, "UPDATE conv SET lm = v.ts FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::bigint[]) AS ts) v"
          " WHERE conv.id = v.id AND (conv.lm IS NULL OR conv.lm < v.ts)")
X(UPD_ACK, "UPDATE member SET ack_ts = $1, ack_seq = $2, ack_at = $3"
           " WHERE conv = $4 AND client = $5 AND (ack_ts, ack_seq) < ($1, $2)")
X(UPD_READ, "UPDATE member SET read_ts = $1, read_seq = $2, read_at = $3"
            " WHERE conv = $4 AND client = $5 AND (read_ts, read_seq) < ($1, $2)")
/* a batch's acks (reads) in one statement each (pg_writer.c: progress_queue), arrays of
 * conv, client, ts, seq, at in job order: per member the furthest position, the first job
 * that gave it on a tie — what UPD_ACK (UPD_READ) job after job leaves, one row version */
#define PG_PROGRESS(k)                                                                                                 \
  "UPDATE member SET " k "_ts = v.ts, " k "_seq = v.seq, " k "_at = v.at FROM (SELECT DISTINCT ON (u.conv, u.client)"  \
  " u.conv, u.client, u.ts, u.seq, u.at FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],"             \
  " $5::bigint[]) WITH ORDINALITY AS u(conv, client, ts, seq, at, i) ORDER BY u.conv, u.client, u.ts DESC,"            \
  " u.seq DESC, u.i) v WHERE member.conv = v.conv AND member.client = v.client AND (member." k "_ts, member." k        \
  "_seq) < (v.ts, v.seq)"
X(UPD_ACKS, PG_PROGRESS("ack"))
X(UPD_READS, PG_PROGRESS("read"))
X(DEL_CONV_MSGS, "DELETE FROM msg WHERE conv = $1")
X(DEL_CONV_MEMBERS, "DELETE FROM member WHERE conv = $1")
X(DEL_CONV_SETS, "DELETE FROM conv_set WHERE conv = $1")
X(DEL_CONV_ROLES, "DELETE FROM member_info WHERE conv = $1")
X(DEL_CONV_EXT, "DELETE FROM msg_ext WHERE conv = $1")
X(DEL_CONV_RCP, "DELETE FROM conv_rcp WHERE conv = $1")
X(DEL_CONV, "DELETE FROM conv WHERE id = $1")
X(DEL_MSG, "DELETE FROM msg WHERE conv = $1 AND ts = $2 AND seq = $3")
X(UPD_TIME, "UPDATE conv SET updated_at = GREATEST(updated_at, $1) WHERE id = $2")
X(INS_SET, "INSERT INTO conv_set (conv, kind, client, created_at, expire_at) VALUES ($1, $2, $3, $4, $5)"
           " ON CONFLICT (conv, kind, client) DO UPDATE SET expire_at = CASE WHEN conv_set.expire_at IS NULL"
           " OR excluded.expire_at IS NULL THEN NULL ELSE excluded.expire_at END")
X(DEL_SET, "DELETE FROM conv_set WHERE conv = $1 AND kind = $2 AND client = $3")
X(INS_ROLE, "INSERT INTO member_info (conv, client, role, info_id, created_at, updated_at)"
            " VALUES ($1, $2, coalesce($5::text, 'Manager'), $3, $4, $4) ON CONFLICT (conv, client) DO UPDATE SET"
            " role = coalesce($5::text, 'Manager'), updated_at = $4")
X(DEL_ROLE, "DELETE FROM member_info WHERE conv = $1 AND client = $2")
X(INS_CBLOCK, "INSERT INTO client_block (client, cid, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
X(DEL_CBLOCK, "DELETE FROM client_block WHERE client = $1 AND cid = $2")
/* lctype follows the new content: a recall is a -127 message from then on */
X(UPD_MSG, "UPDATE msg SET data = $1, flags = $2, mentions = $3, patch_ts = $4, lctype = $8"
           " WHERE conv = $5 AND ts = $6 AND seq = $7")
/* the sequence, not a per-process counter: nodes sharing the database never collide */
X(INS_NOTIF, "INSERT INTO notif (client, ts, seq, body) VALUES ($1, $2, nextval('notif_seq'), $3)")
X(PRUNE_NOTIF, "DELETE FROM notif WHERE ts < $1")
X(INS_DEVICE, "INSERT INTO device (client, token, type, updated_at) VALUES ($1, $2, $3, $4)"
              " ON CONFLICT (client, token) DO UPDATE SET type = $3, updated_at = $4")
X(MOVE_DEVICE, "DELETE FROM device WHERE token = $1 AND client <> $2 AND installation_id IS NULL")
X(TRIM_DEVICES, "DELETE FROM device WHERE client = $1 AND installation_id IS NULL AND token NOT IN"
                " (SELECT token FROM device WHERE client = $1 AND installation_id IS NULL"
                "  ORDER BY updated_at DESC, token LIMIT $2)")
X(DEL_DEVICE_TOKEN, "DELETE FROM device WHERE token = $1")
X(SET_BADGE, "UPDATE device SET badge = $2 WHERE token = $1")
X(ADD_BADGE, "UPDATE device SET badge = badge + $2 WHERE token = $1")
/* SQLite's INSERT OR REPLACE: an older installation of the same token goes, then the row */
X(DEL_INST_TOKEN, "DELETE FROM installation WHERE device_type = $1 AND token = $2 AND id <> $3")
X(PUT_INST, "INSERT INTO installation (id, device_type, token, body, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET device_type = excluded.device_type,"
            " token = excluded.token, body = excluded.body, created_at = excluded.created_at,"
            " updated_at = excluded.updated_at")
X(DEL_INST, "DELETE FROM installation WHERE id = $1")
X(DEL_INST_DEVICES, "DELETE FROM device WHERE installation_id = $1")
X(INS_INST_DEVICE, "INSERT INTO device (client, token, type, installation_id, badge, updated_at)"
                   " VALUES ($1, $2, $3, $4, coalesce((SELECT max(badge) FROM device WHERE token = $2), 0), $5)"
                   " ON CONFLICT (client, token) DO UPDATE SET type = $3, installation_id = $4, updated_at = $5")
X(INS_REVOKED, "INSERT INTO token_revoked (lineage, expires_at) VALUES ($1, $2)"
               " ON CONFLICT (lineage) DO UPDATE SET expires_at = excluded.expires_at")
/* a later kick moves the cut forward, never back */
X(INS_CLIENT_REVOKED, "INSERT INTO client_revoked (client, \"before\", expires_at) VALUES ($1, $2, $3)"
                      " ON CONFLICT (client) DO UPDATE SET \"before\" = GREATEST(client_revoked.\"before\", $2),"
                      " expires_at = GREATEST(client_revoked.expires_at, $3)")
X(PRUNE_REVOKED, "DELETE FROM token_revoked WHERE lineage IN"
                 " (SELECT lineage FROM token_revoked WHERE expires_at < $1 LIMIT 16)")
X(PRUNE_CLIENT_REVOKED, "DELETE FROM client_revoked WHERE client IN"
                        " (SELECT client FROM client_revoked WHERE expires_at < $1 LIMIT 16)")
X(DOC_LOCK, "SELECT doc FROM conv WHERE id = $1 FOR UPDATE")
X(DOC_PUT, "UPDATE conv SET doc = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")

/* ---- readers */
/* the row, its members (client order), its sets ([kind, client] pairs: 0 managers, 1
 * shut-up, 2 blocked) and its newest key, in one round trip */
X(CONV_LOAD,
  "SELECT c.id, c.cid, c.kind, c.creator, c.unique_id, c.created_at, c.updated_at, c.lm, c.expire_at, c.ext_ids,"
  " (SELECT json_agg(client ORDER BY client) FROM member WHERE conv = c.id),"
  " (SELECT json_agg(json_build_array(k, client) ORDER BY k, client) FROM (SELECT 0 AS k, client FROM member_info"
  "   WHERE conv = c.id AND role = 'Manager' UNION ALL SELECT kind, client FROM conv_set WHERE conv = c.id) s),"
  " l.ts, l.seq, EXISTS (SELECT 1 FROM conv_rcp WHERE conv_rcp.conv = c.id)"
  " FROM conv c LEFT JOIN LATERAL (SELECT ts, seq FROM msg WHERE msg.conv = c.id"
  " ORDER BY ts DESC, seq DESC LIMIT 1) l ON true WHERE c.cid = $1")
X(CONV_DOC, "SELECT doc FROM conv WHERE id = $1")
X(CONV_MEMBERS, "SELECT client FROM member WHERE conv = $1 ORDER BY client")
X(MEMBER_INFOS, "SELECT client, role, info_id, created_at, updated_at FROM member_info WHERE conv = $1 ORDER BY client")
X(CLIENT_BLOCKS, "SELECT cid FROM client_block WHERE client = $1 AND cid > $2 ORDER BY cid LIMIT $3")
X(CLIENT_BLOCKED, "SELECT 1 FROM client_block WHERE client = $1 AND cid = $2")
X(LAST_MSG, "SELECT " PG_MSG_COLS " FROM msg WHERE conv = $1 ORDER BY ts DESC, seq DESC LIMIT 1")
X(LAST_MSG_FOR, "SELECT " PG_MSG_COLS " FROM msg WHERE conv = $1" PG_VIS("2") " ORDER BY ts DESC, seq DESC LIMIT 1")
X(MSG_GET, "SELECT " PG_MSG_COLS " FROM msg WHERE conv = $1 AND ts = $2 AND seq = $3")
X(RECEIPTS, "SELECT " PG_MSG_COLS " FROM msg WHERE conv = $1 AND (ts, seq) > ($2, $3) AND (ts, seq) <= ($4, $5)"
            " AND (flags & 2) <> 0 AND sender <> $6 ORDER BY ts, seq LIMIT 100")
X(UNREAD_CONVS,
  "SELECT id, cid, kind, read_ts, read_seq, read_at FROM (SELECT c.id, c.cid, c.kind, m.read_ts,"
  " m.read_seq, m.read_at, " PG_LAST_TS("c.id") " AS last FROM member m JOIN conv c ON c.id = m.conv"
                                                " WHERE m.client = $1 AND c.kind <> 2) x"
                                                " WHERE (last >= read_ts AND last > $2) OR ($2 > 0 AND read_at > $2)"
                                                " ORDER BY last DESC NULLS LAST LIMIT $3")
X(UNREAD_MSGS, "SELECT flags, mentions FROM msg WHERE conv = $1 AND (ts, seq) > ($2, $3) AND sender <> $4" PG_VIS(
                   "4") " ORDER BY ts DESC, seq DESC LIMIT 100")
X(OFFLINE_CONVS, "SELECT id, cid, kind, ack_ts, ack_seq FROM (SELECT c.id, c.cid, c.kind, m.ack_ts, m.ack_seq,"
                 " " PG_LAST_TS("c.id") " AS last FROM member m JOIN conv c ON c.id = m.conv"
                                        " WHERE m.client = $1 AND c.kind <> 2) x WHERE last >= ack_ts ORDER BY last")
X(OFFLINE_MSGS,
  "SELECT " PG_MSG_COLS
  " FROM msg WHERE conv = $1 AND (ts, seq) > ($2, $3) AND sender <> $4" PG_VIS("4") " ORDER BY ts, seq LIMIT $5")
X(PROGRESS, "SELECT client, read_ts, read_seq, read_at, ack_ts, ack_seq, ack_at FROM member WHERE conv = $1")
X(NOTIFS, "SELECT ts, body FROM notif WHERE client = $1 AND ts > $2 ORDER BY ts, seq LIMIT $3")
X(EXPIRED, "SELECT id, cid, kind FROM conv WHERE (kind = 4 AND expire_at <= $1)"
           " OR (kind <> 4 AND GREATEST(coalesce(lm, 0), updated_at, coalesce(imported_at, 0)) < $2) LIMIT $3")
X(PATCHES,
  "SELECT c.cid, msg.ts, msg.seq, msg.mid, msg.sender, msg.data, msg.flags, msg.mentions, msg.patch_ts,"
  " msg.readers FROM msg JOIN member mb ON mb.conv = msg.conv JOIN conv c ON c.id = msg.conv"
  " WHERE msg.patch_ts > 0 AND msg.patch_ts > $2 AND mb.client = $1" PG_VIS("1") " ORDER BY msg.patch_ts LIMIT $3")
X(DEVICES, "SELECT token, type, installation_id, badge FROM device WHERE client = $1"
           " ORDER BY updated_at DESC, token LIMIT $2")
X(INST_BY_ID, "SELECT id, device_type, token, body, created_at, updated_at FROM installation WHERE id = $1")
X(INST_BY_TOKEN, "SELECT id, device_type, token, body, created_at, updated_at FROM installation"
                 " WHERE device_type = $1 AND token = $2")
X(REVOKED, "SELECT (SELECT \"before\" FROM client_revoked WHERE client = $1),"
           " EXISTS (SELECT 1 FROM token_revoked WHERE lineage = $2)")
X(MSG_EXT_GET, "SELECT ts, seq FROM msg_ext WHERE conv = $1 AND mid = $2")
/* no index on mid alone (it would tax every imported message): a scan, off the loop */
X(MSG_EXT_FIND, "SELECT ts, seq FROM msg_ext WHERE mid = $1 LIMIT 1")
/* a resend (store_msg_by_dt): the newest $5 messages of the conversation since $2, then the
 * sender's one with that dt; beside it, in the same statement (one snapshot), the
 * conversation's newest ts (no row: no message at all) */
X(MSG_BY_DT, "SELECT n.ts, d.mid, d.ts FROM (SELECT ts FROM msg WHERE conv = $1 ORDER BY ts DESC, seq DESC LIMIT 1) n"
             " LEFT JOIN (SELECT mid, ts FROM (SELECT mid, ts, sender, dt FROM msg WHERE conv = $1 AND ts >= $2"
             " ORDER BY ts DESC, seq DESC LIMIT $5) m WHERE sender = $3 AND dt = $4 LIMIT 1) d ON true")
X(MEMBERS_PAGE, "SELECT client, joined_at FROM member WHERE conv = $1 AND client > $2 ORDER BY client LIMIT $3")
X(CLIENT_CONVS, "SELECT c.cid, m.joined_at FROM member m JOIN conv c ON c.id = m.conv WHERE m.client = $1"
                " AND c.kind = $4 AND c.cid > $2 ORDER BY c.cid LIMIT $3")
X(CONV_SET_PAGE, "SELECT client, created_at FROM conv_set WHERE conv = $1 AND kind = $4"
                 " AND ($5 = 0 OR expire_at IS NULL) AND client > $2 ORDER BY client LIMIT $3")
X(CONV_SET_EXPIRY, "SELECT coalesce(expire_at, 0) FROM conv_set WHERE conv = $1 AND kind = $2 AND client = $3")
X(SHUTUPS_EXPIRED, "SELECT s.conv, c.cid, s.client FROM conv_set s JOIN conv c ON c.id = s.conv"
                   " WHERE s.expire_at IS NOT NULL AND s.expire_at <= $1 AND s.kind = 1 LIMIT $2")

/* ---- the bulk import (pg_import.c), on the writer's connection */
X(IMP_CONV_GET, "SELECT id, kind, creator, unique_id, created_at, updated_at, coalesce(lm, 0), coalesce(expire_at, 0),"
                " doc FROM conv WHERE cid = $1")
X(IMP_CONV_INS, "INSERT INTO conv (cid, kind, creator, unique_id, created_at, updated_at, lm, expire_at, member_count,"
                " doc, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id")
/* lm only ever grows (messages move it too) */
X(IMP_CONV_UPD, "UPDATE conv SET creator = $2, unique_id = $3, created_at = $4, updated_at = $5,"
                " lm = CASE WHEN $6::bigint IS NULL THEN lm ELSE GREATEST(coalesce(lm, 0), $6::bigint) END,"
                " expire_at = $7, doc = $8, imported_at = $9 WHERE id = $1")
X(IMP_UNIQUE_OWNER, "SELECT cid FROM conv WHERE unique_id = $1")
X(IMP_MEMBER_COUNT, "UPDATE conv SET member_count = (SELECT count(*) FROM member WHERE conv = $1) WHERE id = $1")
X(IMP_LAST_KEY, "SELECT ts, seq FROM msg WHERE conv = $1 ORDER BY ts DESC, seq DESC LIMIT 1")
X(IMP_ROLES, "SELECT client, role FROM member_info WHERE conv = $1 ORDER BY client")
X(IMP_ROLE_PUT, "INSERT INTO member_info (conv, client, role, info_id, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (conv, client) DO UPDATE SET role = $3, updated_at = $5")
/* shut-ups (kind 1): only the permanent ones */
X(IMP_SET_OF, "SELECT client FROM conv_set WHERE conv = $1 AND kind = $2 AND ($2 <> 1 OR expire_at IS NULL)"
              " ORDER BY client")
/* over a temporary shut-up it makes it permanent */
X(IMP_SET_INS, "INSERT INTO conv_set (conv, kind, client, created_at, expire_at) VALUES ($1, $2, $3, $4, NULL)"
               " ON CONFLICT (conv, kind, client) DO UPDATE SET expire_at = NULL")
/* the message may have been deleted since (the mapping stays: a delete stands) */
X(IMP_EXT_GET, "SELECT e.ts, e.seq, coalesce(m.patch_ts, 0), (m.ts IS NOT NULL)::int FROM msg_ext e"
               " LEFT JOIN msg m ON m.conv = e.conv AND m.ts = e.ts AND m.seq = e.seq WHERE e.conv = $1 AND e.mid = $2")
X(IMP_EXT_INS, "INSERT INTO msg_ext (conv, mid, ts, seq) VALUES ($1, $2, $3, $4)")
X(IMP_SEQ_AT, "SELECT coalesce(max(seq), 0) FROM msg WHERE conv = $1 AND ts = $2")
X(IMP_MSG_INS, "INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts)"
               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING")
X(IMP_MSG_UPD, "UPDATE msg SET data = $4, flags = $5, mentions = $6, lctype = $7, patch_ts = $8"
               " WHERE conv = $1 AND ts = $2 AND seq = $3")
/* only ever forward */
X(IMP_READ_FWD, "UPDATE member SET read_ts = $2, read_seq = $3 WHERE conv = $1 AND (read_ts, read_seq) < ($2, $3)")
X(IMP_ACK_FWD, "UPDATE member SET ack_ts = $2, ack_seq = $3 WHERE conv = $1 AND (ack_ts, ack_seq) < ($2, $3)")
X(IMP_CONV_EXT, "UPDATE conv SET ext_ids = 1, lm = GREATEST(coalesce(lm, 0), $2), imported_at = $3 WHERE id = $1")
X(IMP_INST_GET, "SELECT device_type, token, body, created_at, updated_at FROM installation WHERE id = $1")
X(IMP_INST_CLIENTS, "SELECT client FROM device WHERE installation_id = $1 ORDER BY client")
X(IMP_DOC_PUT, "UPDATE conv SET doc = $2, imported_at = $3 WHERE id = $1")
