// Dashboard: live charts from /metrics, scraped every second. Counters become rates
// (difference over the interval), histograms become p50/p99 of the interval (bucket
// differences, interpolated inside the bucket), the way Prometheus' rate() and
// histogram_quantile() would.
import uPlot from 'uplot';
import { metrics } from './api.js';
import { h, flash } from './dom.js';

const POINTS = 120; // two minutes

const sum = (m, name) => {
  let s = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
};

/** The q-quantile (seconds) of what a histogram observed between two scrapes, or null. */
export function quantile(prev, cur, name, q) {
  const buckets = [];
  for (const [k, v] of cur) {
    const m = k.startsWith(`${name}_bucket{`) && /le="([^"]+)"/.exec(k);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), v - (prev.get(k) || 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(count - below, 1));
    }
    lower = le;
    below = count;
  }
  return lower;
}

const charts = [
  { id: 'sessions', title: 'Sessions', unit: '', series: ['sessions', 'connections'] },
  { id: 'messages', title: 'Messages / s', unit: '/s', series: ['in', 'out'] },
  { id: 'fanout', title: 'Fan-out deliveries / s', unit: '/s', series: ['fan-out'] },
  { id: 'ack', title: 'Send → ack latency (ms)', unit: 'ms', series: ['p50', 'p99'] },
  { id: 'commit', title: 'Commit latency (ms)', unit: 'ms', series: ['p50', 'p99'] },
  { id: 'errors', title: 'Errors / s', unit: '/s', series: ['errors'] },
];
const COLORS = ['#2f6fde', '#d9480f', '#2b8a3e', '#862e9c'];

const tiles = [
  ['sessions', 'sessions'], ['in', 'messages in / s'], ['out', 'messages out / s'], ['fanout', 'fan-out / s'],
  ['ack', 'send→ack p99 ms'], ['commit', 'commit p99 ms'],
];

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return v >= 100 ? String(Math.round(v)) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}

export function dashboard(view) {
  const data = Object.fromEntries(charts.map((c) => [c.id, [[], ...c.series.map(() => [])]]));
  const plots = {};
  const grid = h('div', { class: 'charts' });
  const errorTable = h('div', { id: 'errors-by-code' });
  view.append(
    h('h2', {}, 'Dashboard'),
    h('div', { class: 'tiles' }, tiles.map(([id, label]) => h('div', { class: 'tile', id: `tile-${id}` }, h('span', { class: 'v' }, '–'), h('small', {}, label)))),
    grid,
    h('h3', {}, 'Errors by code (since start)'), errorTable,
  );
  for (const c of charts) {
    const box = h('div', { class: 'chart', id: `chart-${c.id}` }, h('h3', {}, c.title));
    grid.append(box);
    plots[c.id] = new uPlot({
      width: Math.max(280, Math.min(560, box.clientWidth - 16 || 480)),
      height: 160,
      legend: { show: true },
      scales: { x: { time: true } },
      axes: [{ stroke: '#667' }, { stroke: '#667', size: 50 }],
      series: [{}, ...c.series.map((label, i) => ({ label, stroke: COLORS[i], width: 2, spanGaps: false }))],
    }, data[c.id], box);
  }
  const resize = () => {
    for (const c of charts) {
      const box = document.getElementById(`chart-${c.id}`);
      if (box) plots[c.id].setSize({ width: Math.max(280, box.clientWidth - 16), height: 160 });
    }
  };
  window.addEventListener('resize', resize);
  requestAnimationFrame(resize);

  let prev = null, prevAt = 0, busy = false;
  async function tick() {
    if (busy) return;
    busy = true;
    try {
      const cur = await metrics();
      const at = Date.now();
      if (prev) {
        const dt = (at - prevAt) / 1000;
        const rate = (name) => Math.max(0, (sum(cur, name) - sum(prev, name)) / dt);
        const ms = (name, q) => {
          const v = quantile(prev, cur, name, q);
          return v === null ? null : v * 1000;
        };
        const values = {
          sessions: [sum(cur, 'tern_sessions'), sum(cur, 'tern_connections')],
          messages: [rate('tern_messages_in_total'), rate('tern_messages_out_total')],
          fanout: [rate('tern_fanout_deliveries_total')],
          ack: [ms('tern_send_ack_seconds', 0.5), ms('tern_send_ack_seconds', 0.99)],
          commit: [ms('tern_store_commit_seconds', 0.5), ms('tern_store_commit_seconds', 0.99)],
          errors: [rate('tern_errors_total')],
        };
        for (const c of charts) {
          const d = data[c.id];
          d[0].push(at / 1000);
          values[c.id].forEach((v, i) => d[i + 1].push(v));
          if (d[0].length > POINTS) d.forEach((s) => s.shift());
          plots[c.id].setData(d);
        }
        const tileValues = {
          sessions: values.sessions[0], in: values.messages[0], out: values.messages[1], fanout: values.fanout[0],
          ack: values.ack[1], commit: values.commit[1],
        };
        for (const [id, v] of Object.entries(tileValues)) {
          const el = document.querySelector(`#tile-${id} .v`);
          if (el) el.textContent = fmt(v);
        }
        const errs = [...cur].filter(([k]) => k.startsWith('tern_errors_total{'));
        errorTable.replaceChildren(errs.length
          ? h('table', {}, h('tbody', {}, errs.map(([k, v]) => {
            const [, code, reason] = /code="([^"]+)",reason="([^"]+)"/.exec(k) || [];
            return h('tr', {}, h('td', {}, code), h('td', {}, reason), h('td', {}, String(v)));
          })))
          : h('p', { class: 'empty' }, 'no protocol errors sent'));
      }
      prev = cur;
      prevAt = at;
    } catch (err) {
      flash(`metrics: ${err.message}`, 'error');
    } finally {
      busy = false;
    }
  }
  tick();
  const timer = setInterval(tick, 1000);
  return () => {
    clearInterval(timer);
    window.removeEventListener('resize', resize);
    Object.values(plots).forEach((p) => p.destroy());
  };
}
