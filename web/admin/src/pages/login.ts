import { login } from '../api';
import { field, h, statusLine } from '../dom';
import type { Page } from '../main';

export function loginPage(message: string | undefined, done: () => void): Page {
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, autofocus: true });
  const status = statusLine();
  if (message) status.info(message);
  const button = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', {
    class: 'card narrow login',
    'aria-label': 'Log in',
    onsubmit: async (ev: SubmitEvent) => {
      ev.preventDefault();
      button.disabled = true;
      status.info('Logging in…');
      try {
        await login(password.value);
        done();
      } catch (e) {
        status.error((e as Error).message);
        password.select();
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', null, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'gyre admin'),
  h('p', { class: 'muted' }, 'Log in with the password set in admin.password.'),
  field('Password', password),
  h('div', { class: 'row' }, button),
  status.el);
  setTimeout(() => password.focus(), 0);
  return { el: h('div', { class: 'center' }, form) };
}
