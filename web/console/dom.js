// A few DOM helpers: the console builds its views from plain elements (no inline HTML, so
// nothing the server returns is ever parsed as markup).
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** A table of rows; columns are [title, row => cell content]. */
export function table(columns, rows, empty = 'nothing here') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([t]) => h('th', {}, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map(([, f]) => h('td', {}, f(r))))))));
}

/** A form whose submit runs fn(values, form); errors show in the flash line. */
export function form(props, fields, fn) {
  const f = h('form', { class: 'inline', ...props }, fields);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(f));
    try {
      await fn(values, f);
    } catch (err) {
      flash(err.message, 'error');
    }
  });
  return f;
}

export function input(name, placeholder, attrs = {}) {
  return h('input', { name, placeholder, 'aria-label': placeholder, autocomplete: 'off', ...attrs });
}

let flashTimer;
export function flash(text, kind = 'ok') {
  const el = $('#flash');
  el.textContent = text;
  el.className = `flash ${kind}`;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 3000);
}

/** A button that runs an async action and reports its outcome. */
export function action(label, fn, { confirmText, cls } = {}) {
  return h('button', {
    type: 'button',
    class: cls,
    onclick: async (e) => {
      if (confirmText && !confirm(confirmText)) return;
      e.target.disabled = true;
      try {
        await fn();
      } catch (err) {
        flash(err.message, 'error');
      } finally {
        e.target.disabled = false;
      }
    },
  }, label);
}

export const json = (v) => h('code', { class: 'json' }, JSON.stringify(v));
export const when = (ms) => (ms ? new Date(typeof ms === 'string' ? ms : Number(ms)).toLocaleString() : '');
