// Images with exact dimensions for the file-endpoint tests (issue #7 §4), built byte by
// byte so each test knows what width, height and format the server must report:
// * png, gif, bmp: complete files any decoder opens;
// * jpeg, webp: the header structure the size lives in (markers / RIFF chunks), which is
//   all a server reads — no compressed image data.
// Plus upload helpers shared by tests/proto/files.test.mjs and tests/interop/files.test.mjs.
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

// An RGB PNG, w×h, each pixel a colour from its coordinates.
export function png(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3); // filter byte 0, then pixels
    for (let x = 0; x < w; x++) row.set([(x * 80) & 255, (y * 80) & 255, 128], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.concat(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

// A two-colour GIF89a, w×h. The LZW stream sends a clear code before every pixel, so the
// code table never grows and every code stays 3 bits wide: valid, if not small.
export function gif(w, h) {
  const head = Buffer.alloc(13);
  head.write('GIF89a', 0, 'latin1');
  head.writeUInt16LE(w, 6);
  head.writeUInt16LE(h, 8);
  head[10] = 0x80; // global colour table of 2 entries
  const palette = Buffer.from([0, 0, 0, 255, 255, 255]);
  const desc = Buffer.alloc(10);
  desc[0] = 0x2c;
  desc.writeUInt16LE(w, 5);
  desc.writeUInt16LE(h, 7);
  const codes = [];
  for (let i = 0; i < w * h; i++) codes.push(4, (i % 2)); // clear, pixel
  codes.push(5); // end of information
  const bytes = [];
  let acc = 0;
  let nbits = 0;
  for (const c of codes) {
    acc |= c << nbits;
    nbits += 3;
    while (nbits >= 8) {
      bytes.push(acc & 255);
      acc >>= 8;
      nbits -= 8;
    }
  }
  if (nbits) bytes.push(acc & 255);
  const blocks = [];
  for (let i = 0; i < bytes.length; i += 255) {
    const part = bytes.slice(i, i + 255);
    blocks.push(Buffer.from([part.length, ...part]));
  }
  return Buffer.concat([head, palette, desc, Buffer.from([2]), ...blocks, Buffer.from([0, 0x3b])]);
}

// A 24-bit bottom-up BMP with a BITMAPINFOHEADER, w×h.
export function bmp(w, h) {
  const stride = (w * 3 + 3) & ~3;
  const size = 54 + stride * h;
  const b = Buffer.alloc(size);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(stride * h, 34);
  for (let i = 54; i < size; i++) b[i] = i & 255;
  return b;
}

// JPEG markers up to the frame header: SOI, APP0 (JFIF), a DQT to skip over, SOF0 with the
// size, then EOI.
export function jpeg(w, h) {
  const seg = (marker, payload) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(payload.length + 2);
    return Buffer.concat([Buffer.from([0xff, marker]), len, payload]);
  };
  const app0 = Buffer.from([0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  const dqt = Buffer.concat([Buffer.from([0]), Buffer.alloc(64, 1)]);
  const sof = Buffer.alloc(15);
  sof[0] = 8;
  sof.writeUInt16BE(h, 1);
  sof.writeUInt16BE(w, 3);
  sof[5] = 3;
  sof.set([1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0], 6);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), seg(0xe0, app0), seg(0xdb, dqt), seg(0xc0, sof), Buffer.from([0xff, 0xd9])]);
}

// A RIFF/WEBP container with a VP8X chunk giving the canvas size.
export function webp(w, h) {
  const vp8x = Buffer.alloc(10);
  vp8x.writeUIntLE(w - 1, 4, 3);
  vp8x.writeUIntLE(h - 1, 7, 3);
  const chunk = Buffer.concat([Buffer.from('VP8X', 'latin1'), Buffer.from([10, 0, 0, 0]), vp8x]);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(4 + chunk.length);
  return Buffer.concat([Buffer.from('RIFF', 'latin1'), size, Buffer.from('WEBP', 'latin1'), chunk]);
}

export const md5 = (buf) => createHash('md5').update(buf).digest('hex');

export const appHeaders = (server, extra = {}) => ({ 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, ...extra });
export const masterHeaders = (server, extra = {}) => ({
  'X-LC-Id': server.appId,
  'X-LC-Key': `${server.masterKey},master`,
  ...extra,
});

// POST /1.1/files/<name> with the raw bytes; resolves with {status, json, headers}.
export async function uploadRaw(server, name, bytes, { contentType, headers, prefix = '/1.1/files/' } = {}) {
  const h = { ...(headers || appHeaders(server)) };
  if (contentType) h['Content-Type'] = contentType;
  const res = await fetch(`${server.httpUrl}${prefix}${encodeURIComponent(name)}`, { method: 'POST', headers: h, body: bytes });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

// GET a URL; resolves with {status, headers, body (Buffer)}.
export async function download(url, headers = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}
