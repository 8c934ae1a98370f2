import { call } from '../api';
import { formatUptime, h, replace, sparkline, statusLine } from '../dom';
import type { Page } from '../main';

interface NodeInfo {
  uid: string;
  name: string;
  version: string;
  num_clients: number;
  num_users: number;
  num_subs: number;
  num_channels: number;
  uptime?: number;
}

const REFRESH_MS = 3000;
const KEEP = 60;

/** Samples over this browser session (kept while switching pages). */
const series = new Map<string, { clients: number[]; channels: number[] }>();

function push(key: string, clients: number, channels: number): void {
  let s = series.get(key);
  if (!s) {
    s = { clients: [], channels: [] };
    series.set(key, s);
  }
  s.clients.push(clients);
  s.channels.push(channels);
  if (s.clients.length > KEEP) {
    s.clients.shift();
    s.channels.shift();
  }
}

const TOTAL = '\u0000total';

export function nodesPage(): Page {
  const status = statusLine();
  const updated = h('span', { class: 'muted' });
  const cards = h('div', { class: 'cards' });
  const tbody = h('tbody');
  const tfoot = h('tfoot');
  const table = h('table', { class: 'data', 'aria-label': 'Nodes' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'UID'), h('th', { scope: 'col' }, 'Version'),
      h('th', { scope: 'col', class: 'num' }, 'Clients'), h('th', { scope: 'col', class: 'num' }, 'Users'),
      h('th', { scope: 'col', class: 'num' }, 'Subscriptions'), h('th', { scope: 'col', class: 'num' }, 'Channels'),
      h('th', { scope: 'col', class: 'num' }, 'Uptime'), h('th', { scope: 'col' }, 'Clients'), h('th', { scope: 'col' }, 'Channels'))),
    tbody, tfoot);

  let timer: number | undefined;
  let stopped = false;

  const card = (label: string, value: string | number, chart?: SVGSVGElement) =>
    h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, String(value)), chart || null);

  async function refresh(): Promise<void> {
    try {
      const res = await call<{ nodes: NodeInfo[] }>('info', {});
      if (stopped) return;
      const nodes = [...(res.nodes || [])].sort((a, b) => a.name.localeCompare(b.name) || a.uid.localeCompare(b.uid));
      const total = { clients: 0, users: 0, subs: 0, channels: 0 };
      for (const n of nodes) {
        push(n.uid, n.num_clients, n.num_channels);
        total.clients += n.num_clients;
        total.users += n.num_users;
        total.subs += n.num_subs;
        total.channels += n.num_channels;
      }
      push(TOTAL, total.clients, total.channels);
      const t = series.get(TOTAL)!;
      replace(cards,
        card('Nodes', nodes.length),
        card('Clients', total.clients, sparkline(t.clients, 'Clients, all nodes', 160, 32)),
        card('Users', total.users),
        card('Subscriptions', total.subs),
        card('Channels', total.channels, sparkline(t.channels, 'Channels, all nodes', 160, 32)));
      replace(tbody, nodes.map((n) => {
        const s = series.get(n.uid)!;
        return h('tr', { 'data-node': n.name },
          h('th', { scope: 'row' }, n.name), h('td', { class: 'mono small' }, n.uid), h('td', null, n.version),
          h('td', { class: 'num' }, n.num_clients), h('td', { class: 'num' }, n.num_users),
          h('td', { class: 'num' }, n.num_subs), h('td', { class: 'num' }, n.num_channels),
          h('td', { class: 'num' }, formatUptime(n.uptime || 0)),
          h('td', null, sparkline(s.clients, `Clients on ${n.name}`)), h('td', null, sparkline(s.channels, `Channels on ${n.name}`)));
      }));
      replace(tfoot, h('tr', null,
        h('th', { scope: 'row' }, `Total (${nodes.length} node${nodes.length === 1 ? '' : 's'})`), h('td'), h('td'),
        h('td', { class: 'num' }, total.clients), h('td', { class: 'num' }, total.users),
        h('td', { class: 'num' }, total.subs), h('td', { class: 'num' }, `${total.channels}`),
        h('td'), h('td'), h('td')));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
      status.clear();
    } catch (e) {
      if (!stopped) status.error(`Could not load node info: ${(e as Error).message}`);
    }
  }

  async function loop(): Promise<void> {
    await refresh();
    if (!stopped) timer = window.setTimeout(loop, REFRESH_MS);
  }
  loop();

  const el = h('section', { class: 'page', 'aria-labelledby': 'nodes-h' },
    h('div', { class: 'page-head' }, h('h1', { id: 'nodes-h' }, 'Nodes'), updated,
      h('button', { type: 'button', class: 'secondary', onclick: () => refresh() }, 'Refresh now')),
    status.el,
    cards,
    h('div', { class: 'table-wrap' }, table),
    h('p', { class: 'muted small' }, 'Every node of the cluster answers info; channels in the total are counted per node (a channel with subscribers on two nodes counts twice).'));

  return {
    el,
    dispose: () => {
      stopped = true;
      window.clearTimeout(timer);
    },
  };
}
