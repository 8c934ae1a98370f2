import { ApiError, call, tail } from '../api';
import { compact, field, h, replace, statusLine } from '../dom';
import type { Page } from '../main';

const NOT_AVAILABLE = 108;
const TAIL_KEEP = 200;

interface Publication {
  data?: unknown;
  offset?: number;
  info?: { user?: string; client?: string };
  tags?: Record<string, string>;
}

function errorText(e: unknown, what: string): string {
  if (e instanceof ApiError && e.code === NOT_AVAILABLE) return `${what} is off for this channel's namespace.`;
  return `${what}: ${(e as Error).message}`;
}

export function channelsPage(): Page {
  // ---------------------------------------------------------------- list
  const pattern = h('input', { type: 'search', name: 'pattern', placeholder: 'e.g. chat:*', autocomplete: 'off', spellcheck: 'false' });
  const listStatus = statusLine();
  const listBody = h('tbody');
  const count = h('span', { class: 'muted' });
  const listForm = h('form', {
    class: 'inline-form',
    onsubmit: (ev: SubmitEvent) => {
      ev.preventDefault();
      loadList();
    },
  }, field('Filter (glob: * and ?)', pattern), h('button', { type: 'submit' }, 'Filter'));

  async function loadList(): Promise<void> {
    listStatus.info('Loading…');
    try {
      const res = await call<{ channels: Record<string, { num_clients: number }> }>('channels', { pattern: pattern.value.trim() });
      const names = Object.keys(res.channels || {}).sort();
      count.textContent = `${names.length} channel${names.length === 1 ? '' : 's'} with subscribers`;
      replace(listBody, names.length ? names.map((name) => h('tr', { class: name === selected ? 'selected' : null, 'data-channel': name },
        h('td', { class: 'mono' }, h('button', { type: 'button', class: 'link', title: 'Inspect this channel', onclick: () => select(name) }, name)),
        h('td', { class: 'num' }, res.channels[name].num_clients))) : h('tr', null, h('td', { colspan: '2', class: 'muted' }, 'No channel matches.')));
      listStatus.clear();
    } catch (e) {
      listStatus.error(`Could not list channels: ${(e as Error).message}`);
    }
  }

  const openInput = h('input', { type: 'text', name: 'channel', placeholder: 'any channel, e.g. chat:index', autocomplete: 'off', spellcheck: 'false' });
  const openForm = h('form', {
    class: 'inline-form open-form',
    onsubmit: (ev: SubmitEvent) => {
      ev.preventDefault();
      const name = openInput.value.trim();
      if (name) select(name);
    },
  }, field('Open a channel by name', openInput), h('button', { type: 'submit', class: 'secondary' }, 'Open'));

  // ---------------------------------------------------------------- detail
  let selected = '';
  const detail = h('div', { class: 'detail card', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Pick a channel to see its presence, history and live stream.'));
  let tailAbort: AbortController | null = null;

  function stopTail(): void {
    tailAbort?.abort();
    tailAbort = null;
  }

  function select(name: string): void {
    stopTail();
    selected = name;
    for (const tr of Array.from(listBody.querySelectorAll('tr'))) tr.classList.toggle('selected', tr.dataset.channel === name);
    const title = h('h2', { class: 'mono channel-name' }, name);
    const presenceBox = h('div');
    const historyBox = h('div');
    const tailList = h('ol', { class: 'tail', 'aria-label': 'Live publications' });
    const tailStatus = statusLine();
    const tailButton = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Start live tail');

    async function loadPresence(): Promise<void> {
      replace(presenceBox, h('p', { class: 'muted' }, 'Loading presence…'));
      try {
        const [stats, pres] = await Promise.all([
          call<{ num_clients: number; num_users: number }>('presence_stats', { channel: name }),
          call<{ presence: Record<string, { client: string; user: string; conn_info?: unknown; chan_info?: unknown }> }>('presence', { channel: name }),
        ]);
        const rows = Object.values(pres.presence || {});
        replace(presenceBox,
          h('p', { class: 'presence-stats' }, `${stats.num_clients} client${stats.num_clients === 1 ? '' : 's'}, ${stats.num_users} user${stats.num_users === 1 ? '' : 's'}`),
          rows.length ? h('table', { class: 'data compact', 'aria-label': 'Presence' },
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Client'), h('th', { scope: 'col' }, 'Info'))),
            h('tbody', null, rows.map((p) => h('tr', null,
              h('td', { class: 'mono' }, p.user || '(anonymous)'), h('td', { class: 'mono small' }, p.client),
              h('td', { class: 'mono small' }, p.conn_info !== undefined || p.chan_info !== undefined ? compact({ conn_info: p.conn_info, chan_info: p.chan_info }) : ''))))) : null);
      } catch (e) {
        replace(presenceBox, h('p', { class: 'status info' }, errorText(e, 'Presence')));
      }
    }

    async function loadHistory(): Promise<void> {
      replace(historyBox, h('p', { class: 'muted' }, 'Loading history…'));
      try {
        const res = await call<{ publications?: Publication[]; offset?: number; epoch?: string }>('history', { channel: name, limit: 20, reverse: true });
        const pubs = res.publications || [];
        replace(historyBox,
          h('p', { class: 'history-pos' }, 'Stream top: offset ', h('strong', { class: 'mono' }, String(res.offset ?? 0)), ', epoch ', h('strong', { class: 'mono' }, res.epoch || '–'),
            pubs.length ? ` · last ${pubs.length}, newest first` : ' · empty'),
          pubs.length ? h('table', { class: 'data compact', 'aria-label': 'History' },
            h('thead', null, h('tr', null, h('th', { scope: 'col', class: 'num' }, 'Offset'), h('th', { scope: 'col' }, 'Data'), h('th', { scope: 'col' }, 'From'))),
            h('tbody', null, pubs.map((p) => h('tr', null,
              h('td', { class: 'num mono' }, p.offset ?? ''), h('td', { class: 'mono payload' }, compact(p.data)),
              h('td', { class: 'mono small' }, p.info?.user ?? ''))))) : null);
      } catch (e) {
        replace(historyBox, h('p', { class: 'status info' }, errorText(e, 'History')));
      }
    }

    function addTail(kind: string, body: string, offset?: number): void {
      const item = h('li', { class: `tail-${kind}` },
        h('time', null, new Date().toLocaleTimeString()), h('span', { class: `kind ${kind}` }, kind),
        offset !== undefined ? h('span', { class: 'mono muted' }, `#${offset}`) : null,
        h('span', { class: 'mono payload' }, body));
      tailList.prepend(item);
      while (tailList.children.length > TAIL_KEEP) tailList.lastElementChild?.remove();
    }

    async function startTail(): Promise<void> {
      stopTail();
      const abort = new AbortController();
      tailAbort = abort;
      tailButton.textContent = 'Stop live tail';
      tailButton.setAttribute('aria-pressed', 'true');
      tailStatus.info('Connecting…');
      try {
        await tail(name, abort.signal, (line) => {
          if (line.connect) {
            tailStatus.ok('Live: new publications appear at the top.');
          } else if (line.pub) {
            addTail('pub', compact(line.pub.data), line.pub.offset);
          } else if (line.join) {
            addTail('join', `${line.join.info?.user ?? ''} (${line.join.info?.client ?? ''})`);
          } else if (line.leave) {
            addTail('leave', `${line.leave.info?.user ?? ''} (${line.leave.info?.client ?? ''})`);
          } else if (line.disconnect) {
            tailStatus.error(`The stream ended: ${line.disconnect.reason || 'disconnected'} (code ${line.disconnect.code})`);
          } else {
            addTail('other', compact(line));
          }
        });
        if (tailAbort === abort) tailStatus.info('The stream ended.');
      } catch (e) {
        if (abort.signal.aborted) tailStatus.info('Stopped.');
        else tailStatus.error(`Live tail failed: ${(e as Error).message}`);
      } finally {
        if (tailAbort === abort) tailAbort = null;
        tailButton.textContent = 'Start live tail';
        tailButton.setAttribute('aria-pressed', 'false');
      }
    }

    tailButton.addEventListener('click', () => {
      if (tailAbort) stopTail();
      else startTail();
    });

    replace(detail,
      h('div', { class: 'page-head' }, title,
        h('button', { type: 'button', class: 'secondary', onclick: () => { loadPresence(); loadHistory(); } }, 'Reload')),
      h('h3', null, 'Presence'), presenceBox,
      h('h3', null, 'History'), historyBox,
      h('div', { class: 'page-head' }, h('h3', null, 'Live tail'), tailButton,
        h('button', { type: 'button', class: 'secondary', onclick: () => tailList.replaceChildren() }, 'Clear')),
      tailStatus.el, tailList);
    loadPresence();
    loadHistory();
  }

  loadList();

  const el = h('section', { class: 'page', 'aria-labelledby': 'channels-h' },
    h('div', { class: 'page-head' }, h('h1', { id: 'channels-h' }, 'Channels'), count,
      h('button', { type: 'button', class: 'secondary', onclick: () => loadList() }, 'Refresh list')),
    h('div', { class: 'split' },
      h('div', null, listForm, listStatus.el,
        h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'aria-label': 'Channels' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Channel'), h('th', { scope: 'col', class: 'num' }, 'Clients'))), listBody)),
        openForm),
      detail));
  return { el, dispose: stopTail };
}
