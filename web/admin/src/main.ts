import './style.css';
import { init, setToken, setUnauthorizedHandler, token } from './api';
import { h, replace } from './dom';
import { loginPage } from './pages/login';
import { nodesPage } from './pages/nodes';
import { channelsPage } from './pages/channels';
import { actionsPage } from './pages/actions';
import { consolePage } from './pages/console';

export interface Page {
  el: HTMLElement;
  dispose?: () => void;
}

const ROUTES: Record<string, { title: string; make: () => Page }> = {
  nodes: { title: 'Nodes', make: nodesPage },
  channels: { title: 'Channels', make: channelsPage },
  actions: { title: 'Actions', make: actionsPage },
  console: { title: 'API console', make: consolePage },
};

const root = document.getElementById('app')!;
let current: Page | null = null;
let insecure = false;
let shell: { main: HTMLElement; nav: HTMLElement } | null = null;

function route(): string {
  const name = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return name in ROUTES ? name : 'nodes';
}

function dispose(): void {
  current?.dispose?.();
  current = null;
}

function showLogin(message?: string): void {
  dispose();
  shell = null;
  current = loginPage(message, () => showApp());
  replace(root, current.el);
  document.title = 'Log in · gyre admin';
}

function logout(): void {
  setToken('');
  showLogin('Logged out.');
}

function buildShell(): { main: HTMLElement; nav: HTMLElement } {
  const nav = h('nav', { 'aria-label': 'Pages' },
    Object.entries(ROUTES).map(([name, r]) => h('a', { href: `#/${name}`, 'data-route': name }, r.title)));
  const main = h('main', { id: 'main', tabindex: '-1' });
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/nodes' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'gyre', h('span', { class: 'muted' }, ' admin')),
    nav,
    h('div', { class: 'spacer' }),
    insecure ? h('span', { class: 'badge warn', title: 'admin.insecure: no login required' }, 'insecure mode') : null,
    insecure ? null : h('button', { type: 'button', class: 'secondary', onclick: logout }, 'Log out'));
  replace(root, header, main);
  return { main, nav };
}

function showApp(): void {
  if (!shell) shell = buildShell();
  render();
}

function render(): void {
  if (!shell) return;
  dispose();
  const name = route();
  for (const a of Array.from(shell.nav.querySelectorAll('a'))) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current = ROUTES[name].make();
  replace(shell.main, current.el);
  document.title = `${ROUTES[name].title} · gyre admin`;
}

window.addEventListener('hashchange', () => {
  if (shell) render();
});

setUnauthorizedHandler(() => {
  if (!shell || insecure) return;
  setToken('');
  showLogin('Your session has ended (the token is no longer valid): log in again.');
});

async function start(): Promise<void> {
  try {
    const state = await init();
    insecure = state.insecure;
    if (state.authenticated) {
      showApp();
    } else {
      if (token()) setToken('');
      showLogin();
    }
  } catch (e) {
    replace(root, h('div', { class: 'card narrow' }, h('h1', null, 'gyre admin'),
      h('p', { class: 'status error' }, `Cannot reach the node's admin API: ${(e as Error).message}`),
      h('button', { type: 'button', onclick: () => location.reload() }, 'Retry')));
  }
}

start();
