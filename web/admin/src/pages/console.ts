import { METHODS, TEMPLATES, raw } from '../api';
import { ctrlEnterSubmits, field, h, pretty, statusLine } from '../dom';
import type { Page } from '../main';
import { parseJson } from './actions';

let lastMethod = 'info';
const drafts: Record<string, string> = {};

export function consolePage(): Page {
  const method = h('select', { name: 'method' }, METHODS.map((m) => h('option', { value: m }, m)));
  method.value = lastMethod;
  const params = h('textarea', { name: 'params', rows: 12, spellcheck: 'false', class: 'mono' });
  const status = statusLine();
  const output = h('pre', { class: 'output mono', 'aria-label': 'Answer', tabindex: '0' });
  const send = h('button', { type: 'submit' }, 'Send');

  const load = () => {
    params.value = drafts[method.value] ?? pretty(TEMPLATES[method.value] ?? {});
  };
  load();
  method.addEventListener('change', () => {
    lastMethod = method.value;
    load();
  });
  params.addEventListener('input', () => {
    drafts[method.value] = params.value;
  });

  const form = h('form', {
    class: 'card',
    'aria-label': 'API call',
    onsubmit: async (ev: SubmitEvent) => {
      ev.preventDefault();
      let body: unknown;
      try {
        body = parseJson(params.value, 'Params');
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('Params must be a JSON object, e.g. {}.');
      } catch (e) {
        status.error((e as Error).message);
        return;
      }
      send.disabled = true;
      status.info(`Calling ${method.value}…`);
      const started = performance.now();
      try {
        const res = await raw(method.value, body);
        const ms = Math.round(performance.now() - started);
        let shown = res.text;
        try {
          shown = res.text.trim().split('\n').map((l) => pretty(JSON.parse(l))).join('\n');
        } catch { /* show as sent */ }
        output.textContent = shown || '(empty body)';
        const failed = res.status !== 200 || /"error"\s*:/.test(res.text);
        (failed ? status.error : status.ok)(`HTTP ${res.status} in ${ms} ms${failed ? ' (see the error below)' : ''}`);
      } catch (e) {
        output.textContent = '';
        status.error(`Request failed: ${(e as Error).message}`);
      } finally {
        send.disabled = false;
      }
    },
  },
  h('div', { class: 'row2' }, field('Method', method), h('div', { class: 'field' }, h('span', { class: 'muted small' }, 'Same params as the server HTTP API (POST /api/<method>).'))),
  field('Params (JSON object)', params, 'Ctrl+Enter sends.'),
  h('div', { class: 'row' }, send, h('button', { type: 'button', class: 'secondary', onclick: () => { delete drafts[method.value]; load(); } }, 'Reset params')),
  status.el);
  ctrlEnterSubmits(form);

  const el = h('section', { class: 'page', 'aria-labelledby': 'console-h' },
    h('div', { class: 'page-head' }, h('h1', { id: 'console-h' }, 'API console')),
    h('div', { class: 'split even' }, form, h('div', { class: 'card' }, h('h2', null, 'Answer'), output)));
  return { el };
}
