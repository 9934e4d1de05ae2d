// Reading ternd's /metrics (Prometheus text format 0.0.4) in tests.
import assert from 'node:assert/strict';

/** Parses exposition text into {series: Map<'name{labels}', number>, help, type}. */
export function parseMetrics(text) {
  const series = new Map();
  const help = new Map();
  const type = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'HELP' ? help : type).set(m[2], m[3]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    series.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  return { series, help, type };
}

/** GET /metrics with the master key; the parsed text. */
export async function scrape(server) {
  const res = await fetch(`${server.httpUrl}/metrics`, {
    headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

/** The value of one series ('name' or 'name{labels}'), 0 when absent. */
export const value = (m, key) => m.series.get(key) ?? 0;

/** Scrapes until pred(metrics) holds (counters settle as connections close); the last scrape. */
export async function scrapeUntil(server, pred, what, timeoutMs = 5000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(server);
    if (pred(m)) return m;
    if (Date.now() > until) assert.fail(`metrics never showed ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
