// A keep-alive HTTP/1.1 connection written by hand, so a test knows which requests went on
// it (and so on which worker of a ternd they run: a worker serves a connection for good).
// request() resolves with {status, body}, or {closed: true} when the connection closed
// before a whole answer.
import { connect as netConnect } from 'node:net';

export async function rawHttp(port) {
  const s = netConnect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  let buf = Buffer.alloc(0);
  let closed = false;
  let waiter = null;
  const check = () => {
    if (!waiter) return;
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0) {
      const head = buf.subarray(0, end).toString();
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] || 0);
      if (buf.length >= end + 4 + len) {
        const body = buf.subarray(end + 4, end + 4 + len).toString();
        buf = buf.subarray(end + 4 + len);
        const w = waiter;
        waiter = null;
        w({ status: Number(head.split(' ')[1]), body });
        return;
      }
    }
    if (closed) {
      const w = waiter;
      waiter = null;
      w({ closed: true });
    }
  };
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); check(); });
  s.on('close', () => { closed = true; check(); });
  s.on('error', () => {});
  return {
    request(method, path, headers = {}, body = '') {
      const h = Object.entries({ Host: '127.0.0.1', 'Content-Length': Buffer.byteLength(body), ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      s.write(`${method} ${path} HTTP/1.1\r\n${h}\r\n${body}`);
      return new Promise((resolve) => { waiter = resolve; check(); });
    },
    close() { s.destroy(); },
  };
}
