// Issue #15 point 1: the Debian package, installed, used and removed for real.
//
// `cpack` builds tern_<version>_<arch>.deb from this test's build directory. It is installed
// with the system's own dpkg into a scratch root that is the machine itself seen through
// copy-on-write layers: a private mount namespace (unshare) with overlayfs on /etc, /usr and
// /var, whose upper layers are temporary directories. Every maintainer script runs as it
// would on a server (adduser, deb-systemd-helper, the ldconfig trigger), dependencies are
// checked against the real system, and nothing reaches the real /etc, /usr or /var; when
// the holding process ends the namespace and its mounts are gone. /run/systemd is hidden
// in it, so the scripts do not talk to a running systemd. Needs root (the tests run as root;
// CI too) and overlayfs.
//
// Checked: the files and where they go, the tern system user, /var/lib/tern and the
// conffile with their owners and modes, `systemd-analyze verify` on the unit, the installed
// ternd run as user tern against the installed configuration (loopback port, data in a
// temp dir) and used by the installed `tern`, a program built with
// `pkg-config --cflags --libs tern` (shared, and static with libtern.a) logging in to it,
// then `dpkg --remove` (the conffile stays) and `dpkg --purge` (nothing left but the system
// user's lines in /etc/passwd and friends, and dpkg's and man-db's own bookkeeping).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const build = process.env.TERN_BUILD || join(root, 'build-asan');
const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const version = /project\(tern VERSION ([0-9.]+)/.exec(readFileSync(join(root, 'CMakeLists.txt'), 'utf8'))[1];

const unsupported = (() => {
  if (process.getuid?.() !== 0) return 'needs root (dpkg, unshare, overlayfs)';
  for (const tool of ['dpkg', 'cpack', 'unshare', 'nsenter', 'systemd-analyze', 'pkg-config', 'cc']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/deps.sh --test)`;
  }
  return null;
})();

describe('the Debian package', { skip: unsupported ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-package-'));
  let deb;
  let holder; // the process whose mount namespace is the scratch root
  /** Runs a command in the scratch root; {code, stdout, stderr}. */
  const inRoot = (cmd, args = [], opts = {}) => {
    const r = spawnSync('nsenter', ['-t', String(holder.pid), '-m', '--', cmd, ...args], { encoding: 'utf8', ...opts });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const inRootOk = (cmd, args = [], opts = {}) => {
    const r = inRoot(cmd, args, opts);
    assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    // the package, from this build directory (configured with any prefix: it installs as /usr)
    execFileSync('cpack', ['-G', 'DEB'], { cwd: build, stdio: 'pipe' });
    deb = join(build, 'dist', readdirSync(join(build, 'dist')).find((f) => f.startsWith(`tern_${version}_`) && f.endsWith('.deb')));
    // the scratch root
    const mounts = ['etc', 'usr', 'var'].map((d) => `mkdir -p ${dir}/${d}.up ${dir}/${d}.work && mount -t overlay overlay -o lowerdir=/${d},upperdir=${dir}/${d}.up,workdir=${dir}/${d}.work /${d}`).join(' && ');
    holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `${mounts} && if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi && echo ready && exec sleep 3600`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    holder.stdout.on('data', (d) => { out += d; });
    holder.stderr.on('data', (d) => { err += d; });
    for (let i = 0; i < 400 && !out.includes('ready'); i++) {
      if (holder.exitCode !== null) break;
      await sleep(25);
    }
    assert.ok(out.includes('ready'), `the scratch root could not be set up (overlayfs in a mount namespace): ${err}`);
  });
  after(() => {
    holder?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds the programs, the library, the headers, the pkg-config file, the man pages, the web pages, the configuration and the unit', () => {
    const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).split('\n').map((l) => l.split(/\s+/)[5]).filter(Boolean);
    for (const f of ['./usr/bin/ternd', './usr/bin/tern', './usr/bin/tern-bench', './usr/include/tern/tern.h', './usr/include/tern/uv.h',
      './usr/include/tern/sync.h', './usr/include/tern/error.h', './usr/include/tern/error_map.h', './usr/share/man/man8/ternd.8',
      './usr/share/man/man1/tern.1', './etc/tern/ternd.conf', './lib/systemd/system/ternd.service']) {
      assert.ok(files.includes(f), `${f} is in the package:\n${files.join('\n')}`);
    }
    for (const re of [/\/libtern\.a$/, /\/libtern\.so\.0$/, /\/libtern\.so$/, /\/pkgconfig\/tern\.pc$/]) {
      assert.ok(files.some((f) => re.test(f)), `${re} is in the package`);
    }
    if (existsSync(join(build, 'web', 'console'))) assert.ok(files.includes('./usr/share/tern/web/console/index.html'), 'the web console');
    const info = execFileSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' });
    assert.match(info, /^Depends: .*adduser.*\n/m);
    assert.match(info, /^Depends: .*libuv1.*\n/m, 'library dependencies from dpkg-shlibdeps');
    assert.match(info, /^Depends: .*libhiredis0\.14.*\n/m, 'the cluster bus\'s client library');
    assert.match(info, /^Depends: .*libpq5.*\n/m, 'libpq: ternd --store postgres://…');
    assert.match(info, /^Depends: .*liburing2.*\n/m, 'liburing: the workers\' socket writes (src/server/net/uring.c)');
    const control = execFileSync('dpkg-deb', ['--info', deb, 'conffiles'], { encoding: 'utf8' });
    assert.equal(control, '/etc/tern/ternd.conf\n');
  });

  it('installs: the tern system user, /var/lib/tern, the conffile readable by the service only, an enabled unit that systemd-analyze accepts', () => {
    assert.equal(inRoot('getent', ['passwd', 'tern']).code, 2, 'no tern user before the install');
    inRootOk('dpkg', ['-i', deb]);
    assert.match(inRootOk('dpkg-query', ['-W', '-f=${Status} ${Version}', 'tern']), new RegExp(`^install ok installed ${version.replace(/\./g, '\\.')}`));
    const [name, , uid, gid, gecos, home, shell] = inRootOk('getent', ['passwd', 'tern']).trim().split(':');
    assert.equal(name, 'tern');
    assert.ok(Number(uid) < 1000, `a system uid: ${uid}`);
    assert.equal(inRootOk('getent', ['group', 'tern']).split(':')[2], gid, 'its own group');
    assert.match(gecos, /^tern IM server/);
    assert.equal(home, '/var/lib/tern');
    assert.equal(shell, '/usr/sbin/nologin');
    assert.equal(inRootOk('stat', ['-c', '%U:%G %a', '/var/lib/tern']).trim(), 'tern:tern 700');
    assert.equal(inRootOk('stat', ['-c', '%U:%G %a', '/etc/tern/ternd.conf']).trim(), 'root:tern 640');
    assert.match(inRootOk('dpkg-query', ['-W', '-f=${Conffiles}', 'tern']), /^ \/etc\/tern\/ternd\.conf [0-9a-f]{32}$/);
    // every option, commented, with data_dir set for the package
    const conf = inRootOk('cat', ['/etc/tern/ternd.conf']);
    const options = execFileSync(join(build, 'ternd'), ['--options-markdown'], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } })
      .split('\n').filter((l) => l.startsWith('| `')).map((l) => /^\| `([a-z_0-9]+)`/.exec(l)[1]).filter((o) => o !== 'config');
    for (const o of options) assert.match(conf, new RegExp(`^#?${o} =`, 'm'), `${o} in ternd.conf`);
    assert.match(conf, /^data_dir = \/var\/lib\/tern$/m);
    assert.deepEqual(conf.split('\n').filter((l) => /^[a-z]/.test(l)), ['data_dir = /var/lib/tern'], 'only data_dir is set');
    // the unit: enabled for multi-user.target, what ExecStart runs exists, systemd accepts it
    const unit = inRootOk('cat', ['/lib/systemd/system/ternd.service']);
    for (const line of ['Type=notify', 'ExecStart=/usr/bin/ternd --config=/etc/tern/ternd.conf', 'User=tern', 'LimitNOFILE=1048576',
      'ProtectSystem=strict', 'ReadWritePaths=/var/lib/tern', 'NoNewPrivileges=yes', 'PrivateTmp=yes', 'ProtectHome=yes', 'StateDirectory=tern']) {
      assert.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
    }
    assert.equal(inRootOk('readlink', ['/etc/systemd/system/multi-user.target.wants/ternd.service']).trim(), '/lib/systemd/system/ternd.service');
    const verify = inRoot('systemd-analyze', ['verify', '/lib/systemd/system/ternd.service']);
    assert.equal(verify.code, 0, `systemd-analyze verify:\n${verify.stdout}${verify.stderr}`);
    assert.doesNotMatch(verify.stdout + verify.stderr, /ternd\.service/, `no remark on the unit:\n${verify.stderr}`);
    assert.equal(existsSync('/etc/tern/ternd.conf'), false, 'the real /etc is untouched');
  });

  it('the installed ternd runs as user tern on the installed configuration; the installed tern and a pkg-config build talk to it', async () => {
    const data = mkdtempSync(join(tmpdir(), 'tern-package-data-'));
    const [uid, gid] = inRootOk('id', ['-u', 'tern']).trim() ? [Number(inRootOk('id', ['-u', 'tern'])), Number(inRootOk('id', ['-g', 'tern']))] : [];
    chownSync(data, uid, gid);
    const ternd = spawn('nsenter', ['-t', String(holder.pid), '-m', '--', 'setpriv', '--reuid=tern', '--regid=tern', '--clear-groups',
      '/usr/bin/ternd', '--config=/etc/tern/ternd.conf', '--listen=127.0.0.1:0', `--data-dir=${data}`], {
      cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' },
    });
    let out = '';
    let err = '';
    ternd.stdout.on('data', (d) => { out += d; });
    ternd.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => ternd.on('exit', (code, sig) => r(code ?? sig)));
    try {
      for (let i = 0; i < 800 && !/^router: /m.test(out) && ternd.exitCode === null; i++) await sleep(25);
      assert.match(out, /^router: /m, `the installed ternd did not start:\n${out}\n${err}`);
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)[1]);
      const appId = /^app id: +(\S+)$/m.exec(out)[1];
      // the keys went to the data directory given, owned by the service user
      assert.equal(statSync(join(data, 'app.json')).uid, uid);
      if (existsSync(join(build, 'web', 'console'))) {
        assert.equal((await fetch(`http://127.0.0.1:${port}/console/`)).status, 200, 'the web console from /usr/share/tern/web');
      }
      // the installed CLI
      assert.match(inRootOk('/usr/bin/tern', ['--version']), new RegExp(`^tern ${version.replace(/\./g, '\\.')} \\(commit `));
      assert.match(inRootOk('/usr/bin/ternd', ['--version']), new RegExp(`^ternd ${version.replace(/\./g, '\\.')} `));
      const env = { ...process.env, TERN_URL: `ws://127.0.0.1:${port}/`, TERN_APP_ID: appId, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' };
      const sent = JSON.parse(inRootOk('/usr/bin/tern', ['send', '--as', 'pkg-tom', '--to', 'pkg-jerry', '--json', 'hello from the package'], { env }));
      assert.equal(sent.text, 'hello from the package');
      const hist = JSON.parse(inRootOk('/usr/bin/tern', ['history', '--as', 'pkg-jerry', '--conv', sent.conv, '--json'], { env }));
      assert.deepEqual(hist.map((m) => m.text), ['hello from the package']);
      // the man pages are found by man
      assert.match(inRootOk('man', ['-w', 'ternd']), /\/usr\/share\/man\/man8\/ternd\.8/);
      assert.match(inRootOk('man', ['-w', 'tern']), /\/usr\/share\/man\/man1\/tern\.1/);

      // libtern through pkg-config: shared, then static (libtern.a alone of ours)
      const src = join(dir, 'hello-libtern.c');
      writeFileSync(src, `#include <stdio.h>
#include <tern/sync.h>
int main(int argc, char **argv) {
  tern_options_t o;
  tern_options_init(&o);
  o.url = argv[1];
  o.app_id = argv[2];
  tern_t *t = tern_sync_new(&o);
  if (!t) return 2;
  tern_client_t *c = tern_client_get(t, "pkg-config-client", NULL);
  int rc = tern_sync_open(c, NULL);
  printf("libtern %s: open %s\\n", tern_version(), rc == 0 ? "ok" : tern_err_name(rc));
  if (rc == 0) tern_sync_close(c);
  tern_free(t);
  return rc == 0 ? 0 : 1;
}
`);
      const pc = (...a) => inRootOk('pkg-config', a).trim().split(/\s+/).filter(Boolean);
      assert.equal(inRootOk('pkg-config', ['--modversion', 'tern']).trim(), version);
      // a sanitizer build of libtern needs its runtime in the program too
      const san = /libasan/.test(inRootOk('sh', ['-c', 'ldd "$(pkg-config --variable=libdir tern)/libtern.so"'])) ? ['-fsanitize=address,undefined'] : [];
      const shared = join(dir, 'hello-shared');
      inRootOk('cc', [...san, '-o', shared, src, ...pc('--cflags', '--libs', 'tern')]);
      assert.match(inRootOk('ldd', [shared]), /libtern\.so\.0 => (\/usr)?\/lib\/([^/ ]+\/)?libtern\.so\.0 /);
      assert.equal(inRootOk(shared, [`ws://127.0.0.1:${port}/`, appId]), `libtern ${version}: open ok\n`);
      const stat = join(dir, 'hello-static');
      // -l:libtern.a: the archive even though libtern.so is there too (GNU ld), as docs/sdk.md says
      const staticLibs = pc('--static', '--libs', 'tern').map((f) => (f === '-ltern' ? '-l:libtern.a' : f));
      inRootOk('cc', [...san, '-o', stat, src, ...pc('--cflags', 'tern'), ...staticLibs]);
      assert.doesNotMatch(inRootOk('ldd', [stat]), /libtern/);
      assert.equal(inRootOk(stat, [`ws://127.0.0.1:${port}/`, appId]), `libtern ${version}: open ok\n`);
    } finally {
      ternd.kill('SIGTERM');
      const code = await exited;
      rmSync(data, { recursive: true, force: true });
      assert.equal(code, 0, `the installed ternd exited ${code}:\n${err.slice(-3000)}`);
      assert.doesNotMatch(err, SANITIZER);
    }
  });

  it('removes cleanly: remove keeps the conffile, purge leaves nothing but the system user', () => {
    inRootOk('dpkg', ['--remove', 'tern']);
    assert.equal(inRoot('test', ['-e', '/usr/bin/ternd']).code, 1, 'the programs are gone');
    assert.equal(inRoot('test', ['-e', '/lib/systemd/system/ternd.service']).code, 1, 'the unit is gone');
    assert.equal(inRoot('test', ['-f', '/etc/tern/ternd.conf']).code, 0, 'remove keeps the conffile');
    assert.match(inRootOk('dpkg-query', ['-W', '-f=${Status}', 'tern']), /^deinstall ok config-files/);
    inRootOk('dpkg', ['--purge', 'tern']);
    assert.equal(inRoot('test', ['-e', '/etc/tern']).code, 1, 'purge deletes the configuration');
    assert.equal(inRoot('test', ['-e', '/var/lib/tern']).code, 1, 'an empty data directory goes too');
    assert.notEqual(inRoot('dpkg-query', ['-W', 'tern']).code, 0, 'dpkg no longer knows tern');
    assert.equal(inRoot('getent', ['passwd', 'tern']).code, 0, 'the system user stays (Debian policy)');
    // what the install left in the scratch root's layers, directories aside
    const left = [];
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p); else left.push(relative(dir, p).replace(/^(\w+)\.up\//, '/$1/'));
      }
    };
    for (const d of ['etc', 'usr', 'var']) walk(join(dir, `${d}.up`));
    const expected = [
      /^\/etc\/(passwd|group|shadow|gshadow)-?$/, /^\/etc\/\.pwd\.lock$/, // the system user
      /^\/etc\/ld\.so\.cache$/, /^\/var\/cache\/ldconfig\//, // the ldconfig trigger
      /^\/var\/lib\/dpkg\//, /^\/var\/log\/dpkg\.log$/, /^\/var\/cache\/man\//, /^\/var\/cache\/debconf\//,
    ];
    assert.deepEqual(left.filter((f) => !expected.some((re) => re.test(f))), [], 'nothing else left behind');
    const dirs = execFileSync('find', ['.', '-type', 'd', '-name', '*tern*'], { cwd: dir, encoding: 'utf8' }).trim();
    assert.equal(dirs, '', 'no directory of ours left');
  });
});

describe('make install', () => {
  it('puts ternd, tern, tern-bench, libtern, the headers, tern.pc, the man pages, the web pages, ternd.conf and the unit under PREFIX in DESTDIR; the .pc file works where the tree lands', { timeout: 600000 }, () => {
    const dest = mkdtempSync(join(tmpdir(), 'tern-install-'));
    try {
      execFileSync('make', ['-s', 'install', `BUILD=${relative(root, build)}`, `DESTDIR=${dest}`, 'PREFIX=/opt/tern'], { cwd: root, stdio: 'pipe' });
      const p = join(dest, 'opt', 'tern');
      for (const f of ['bin/ternd', 'bin/tern', 'bin/tern-bench', 'include/tern/tern.h', 'include/tern/uv.h', 'include/tern/sync.h',
        'share/man/man8/ternd.8', 'share/man/man1/tern.1', 'etc/tern/ternd.conf', 'lib/systemd/system/ternd.service']) {
        assert.ok(existsSync(join(p, f)), `${f} installed`);
      }
      const libdir = ['lib', 'lib64', 'lib/x86_64-linux-gnu'].map((d) => join(p, d)).find((d) => existsSync(join(d, 'pkgconfig', 'tern.pc')));
      assert.ok(libdir, 'tern.pc installed');
      for (const f of ['libtern.a', 'libtern.so.0', 'libtern.so']) assert.ok(existsSync(join(libdir, f)), f);
      if (existsSync(join(build, 'web', 'console'))) assert.ok(existsSync(join(p, 'share/tern/web/console/index.html')), 'the web pages');
      // the unit and the configuration are made for the prefix installed to
      const unit = readFileSync(join(p, 'lib/systemd/system/ternd.service'), 'utf8');
      assert.match(unit, /^ExecStart=\/opt\/tern\/bin\/ternd --config=\/opt\/tern\/etc\/tern\/ternd\.conf$/m);
      assert.equal(existsSync(join(dest, 'etc')), false, 'nothing outside the prefix');
      // the man pages are man pages
      const man = execFileSync('man', ['-l', join(p, 'share/man/man8/ternd.8')], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } });
      assert.match(man, /--max_members=value/);
      // pkg-config finds the prefix from where tern.pc lies: compile against the moved tree
      const env = { ...process.env, PKG_CONFIG_PATH: join(libdir, 'pkgconfig') };
      const cflags = execFileSync('pkg-config', ['--cflags', 'tern'], { env, encoding: 'utf8' }).trim();
      assert.ok(cflags.includes(dest), `the headers in DESTDIR: ${cflags}`);
      const src = join(dest, 'v.c');
      writeFileSync(src, '#include <tern/tern.h>\n#include <stdio.h>\nint main(void) { puts(tern_version()); return 0; }\n');
      const san = /libasan/.test(execFileSync('ldd', [join(libdir, 'libtern.so')], { encoding: 'utf8' })) ? ['-fsanitize=address,undefined'] : [];
      execFileSync('sh', ['-c', `cc ${san.join(' ')} -o ${dest}/v ${src} $(pkg-config --cflags --libs tern)`], { env });
      assert.equal(execFileSync(join(dest, 'v'), { env: { ...process.env, LD_LIBRARY_PATH: libdir }, encoding: 'utf8' }), `${version}\n`);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});
