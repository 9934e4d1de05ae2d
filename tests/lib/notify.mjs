// Playing systemd's side of sd_notify(3) in a test: a unix datagram socket whose path (or
// abstract '@name') goes into NOTIFY_SOCKET. Node has no AF_UNIX datagram sockets, so the
// receiving end is a perl one-liner (perl-base is Essential in Debian: always there); each
// datagram comes back as one line, its newlines written as "\n".
import { spawn } from 'node:child_process';

export async function notifySocket(address) {
  const child = spawn('perl', ['-MIO::Socket::UNIX', '-MSocket', '-e', `
    my $a = $ARGV[0]; $a =~ s/^@/\\0/;
    my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $a) or die "socket: $!";
    $| = 1; print "listening\\n";
    while (defined $s->recv(my $m, 65536)) { $m =~ s/\\n/\\\\n/g; print "$m\\n"; }`, address],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters = [];
  child.stdout.on('data', (d) => {
    out += d;
    for (const w of [...waiters]) if (w.re.test(out)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  });
  child.stderr.on('data', (d) => { err += d; });
  const n = {
    /** The messages received so far (the "listening" line excluded). */
    messages: () => out.split('\n').slice(1).filter(Boolean),
    /** Resolves once a received message matches re. */
    waitFor(re, ms = 20000) {
      const full = new RegExp(`^${re.source}`, 'm');
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${re} from NOTIFY_SOCKET; got ${JSON.stringify(n.messages())} ${err}`)), ms);
        const w = { re: { test: () => n.messages().some((l) => full.test(l)) }, resolve: () => { clearTimeout(t); resolve(); } };
        if (w.re.test()) w.resolve(); else waiters.push(w);
      });
    },
    /** Resolves once count messages have arrived. */
    async waitCount(count, ms = 20000) {
      for (let t = 0; n.messages().length < count; t += 20) {
        if (t > ms) throw new Error(`${count} messages expected on NOTIFY_SOCKET; got ${JSON.stringify(n.messages())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close() { child.kill(); },
  };
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`perl notify socket did not start: ${err}`)), 10000);
    const check = () => { if (out.startsWith('listening\n')) { clearTimeout(t); resolve(); } else setTimeout(check, 10); };
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`perl exited ${code}: ${err}`)); });
    check();
  });
  child.removeAllListeners('exit');
  return n;
}
