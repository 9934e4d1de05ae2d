#!/bin/sh
# gen-docs.sh — files generated at build time from the binaries' own tables, so that they
# cannot drift from the code:
#   gen-docs.sh conf  TERND OUT [name=value ...]   the commented config file: every option of
#                                                   `ternd --options-markdown` with its default,
#                                                   the name=value pairs set (uncommented)
#   gen-docs.sh ternd-man TERND OUT VERSION         ternd.8 from the same table
#   gen-docs.sh tern-man  TERN  OUT VERSION         tern.1 from `tern --help`, every
#                                                   `tern COMMAND --help` and `tern admin --help`
# Only POSIX sh and awk: nothing beyond what a Debian build machine always has.
set -eu
mode=$1 bin=$2 out=$3
shift 3
# A sanitizer build runs here too; its leak check has nothing to say about a --help.
ASAN_OPTIONS=detect_leaks=0
export ASAN_OPTIONS
tmp="$out.tmp"

# troff: a backslash is \e, a line may not start with . or ', a - in a name is \-
roff_text() { awk '{ gsub(/\\/, "\\e"); if ($0 ~ /^[.'"'"']/) $0 = "\\&" $0; print }'; }

case "$mode" in
conf)
  "$bin" --options-markdown | awk -F'|' -v sets="$*" '
    function trim(s) { gsub(/^ +| +$/, "", s); gsub(/`/, "", s); return s }
    BEGIN {
      n = split(sets, kv, " ")
      for (i = 1; i <= n; i++) { eq = index(kv[i], "="); set[substr(kv[i], 1, eq - 1)] = substr(kv[i], eq + 1) }
      print "# ternd.conf — the configuration of ternd, the tern IM server (ternd --config=FILE; the"
      print "# systemd unit ternd.service passes this file)."
      print "#"
      print "# One \"name = value\" a line; \"#\" starts a comment (values cannot contain one)."
      print "# Every option is here with its default, commented out: uncomment what you change."
      print "# TERN_<NAME> environment variables and --name=value flags override this file."
      print "# `systemctl reload ternd` (SIGHUP) applies the options marked \"reloaded on SIGHUP\";"
      print "# the others take effect at the next start. Generated from ternd'"'"'s option table"
      print "# (ternd --options-markdown; docs/options.md has the same table)."
    }
    /^\| `/ {
      name = trim($2); env = trim($3); def = trim($4); range = trim($5); hup = trim($6); help = trim($7)
      if (name == "config") next
      if (def ~ /^".*"$/) def = substr(def, 2, length(def) - 2)
      print ""
      line = "# " help; w = ""
      # wrap the help text at about 90 columns
      nw = split(help, words, " "); cur = "#"
      for (i = 1; i <= nw; i++) {
        if (length(cur) + 1 + length(words[i]) > 90) { print cur; cur = "#" }
        cur = cur " " words[i]
      }
      print cur
      extra = "# env " env (range != "" ? ", range " range : "") (hup == "reloaded" ? ", reloaded on SIGHUP" : "")
      print extra
      if (name in set) print name " = " set[name]
      else print "#" name " =" (def == "" ? "" : " " def)
    }' >"$tmp"
  ;;
ternd-man)
  version=$1
  {
    cat <<MAN
.TH TERND 8 "" "tern $version" "tern"
.SH NAME
ternd \- the tern realtime messaging (IM) server, LeanCloud-compatible
.SH SYNOPSIS
.B ternd
.RB [ \-\-config=\fIFILE\fR ]
.RI [ \-\-option=value ...]
.br
.B ternd \-\-version | \-\-help | \-\-options\-markdown
.SH DESCRIPTION
.B ternd
speaks the LeanCloud realtime protocol over WebSocket (the official LeanCloud IM SDKs
connect to it unchanged), the LeanCloud REST API for conversations and messages, the
router \fBGET /v1/route\fR, and serves the web console (\fI/console/\fR) and a browser
chat (\fI/chat/\fR). It keeps everything in one SQLite database under \fBdata_dir\fR.
At start it prints the app id, app key and master key (generated and saved in
\fIdata_dir/app.json\fR when not configured) and the URLs clients use.
.PP
Every option below can be set in the configuration file (\fBname = value\fR lines,
\fB#\fR comments), as an environment variable \fBTERN_\fR\fINAME\fR, or as a flag
\fB\-\-name=value\fR; later ones win (defaults, file, environment, flags).
Underscores and dashes are the same in option names.
.SH OPTIONS
MAN
    "$bin" --options-markdown | awk -F'|' '
      function trim(s) { gsub(/^ +| +$/, "", s); gsub(/`/, "", s); return s }
      function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
      /^\| `/ {
        name = trim($2); env = trim($3); def = trim($4); range = trim($5); hup = trim($6); help = trim($7)
        gsub(/\\/, "\\e", help)
        print ".TP"
        print "\\fB\\-\\-" esc(name) "\\fR=\\fIvalue\\fR"
        print help "."
        print ".br"
        print "Default " esc(def) (range != "" ? "; range " esc(range) : "") "; environment \\fB" esc(env) "\\fR" (hup == "reloaded" ? "; reloaded on SIGHUP" : "") "."
      }'
    cat <<'MAN'
.SH SIGNALS
.TP
.B SIGHUP
Reads the configuration again, applies the options marked "reloaded on SIGHUP" and
reopens \fBlog_file\fR (log rotation). An error in the file changes nothing.
.TP
.BR SIGTERM ", " SIGINT
Stops accepting, lets every accepted write commit, and exits 0.
.SH ENVIRONMENT
.TP
.B NOTIFY_SOCKET
Set by systemd for \fBType=notify\fR services: ternd sends \fBREADY=1\fR once it listens,
\fBRELOADING=1\fR and \fBREADY=1\fR around a SIGHUP, and \fBSTOPPING=1\fR at shutdown.
.SH FILES
.TP
.I /etc/tern/ternd.conf
The configuration the Debian package and its systemd unit use; every option is listed,
commented out with its default.
.TP
.I /var/lib/tern
The data directory of the packaged service: \fItern.db\fR (SQLite, WAL mode),
\fIapp.json\fR (the generated keys), \fIfiles/\fR (uploads), \fIternd.lock\fR.
.SH EXIT STATUS
0 after a clean shutdown or \-\-help / \-\-version; 2 for a bad option or configuration;
1 when start-up fails (data directory in use, port in use, storage error).
.SH SEE ALSO
.BR tern (1),
.BR systemctl (1),
.BR systemd.exec (5).
The documentation in the source: README.md, docs/operations.md, docs/options.md,
docs/security.md.
MAN
  } >"$tmp"
  ;;
tern-man)
  version=$1
  {
    cat <<MAN
.TH TERN 1 "" "tern $version" "tern"
.SH NAME
tern \- terminal client of the tern IM server: chat, scriptable commands, back office
.SH SYNOPSIS
.B tern
.I command
.RI [ options ]
.br
.B tern admin
.I command
.RI [ options ]
.br
.B tern \-\-version | \-\-help
.br
.B tern
.I command
.B \-\-help
.SH DESCRIPTION
.B tern
logs in to a tern (or LeanCloud realtime) server as a client over WebSocket
(\fBws://\fR or \fBwss://\fR) with libtern, the C SDK: \fBtern chat\fR is an interactive
chat, the other commands do one thing each and print a summary or, with \fB\-\-json\fR,
JSON. \fBtern admin\fR calls the server's REST API with the master key.
.SH USAGE
.nf
MAN
    "$bin" --help | roff_text
    echo ".fi"
    for c in $("$bin" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }' | sort -u); do
      [ "$c" = admin ] && continue
      echo ".SS tern $c"
      echo ".nf"
      "$bin" "$c" --help | roff_text
      echo ".fi"
    done
    echo ".SH ADMIN"
    echo ".nf"
    "$bin" admin --help | roff_text
    cat <<'MAN'
.fi
.SH ENVIRONMENT
.TP
.B TERN_URL
The server's WebSocket URL (\fB\-\-url\fR); default ws://127.0.0.1:8080/.
.TP
.BR TERN_APP_ID ", " TERN_APP_KEY
The app's id and key (\fB\-\-app\-id\fR, \fB\-\-app\-key\fR).
.TP
.BR TERN_SERVER ", " TERN_MASTER_KEY
For \fBtern admin\fR: the REST API's base URL and the master key.
.TP
.B TERN_DATA_DIR
Where to find \fIapp.json\fR with the keys ternd generated (default \fI./tern\-data\fR).
.SH EXIT STATUS
0 done; 1 the server refused or could not be reached (the error names the URL tried);
2 bad usage (unknown command or option, a missing or out-of-range value).
.SH SEE ALSO
.BR ternd (8).
docs/sdk.md in the source has the C SDK and every command.
MAN
  } >"$tmp"
  ;;
*)
  echo "gen-docs.sh: unknown mode $mode" >&2
  exit 2
  ;;
esac
mv "$tmp" "$out"
