import { call } from '../api';
import { ctrlEnterSubmits, field, h, statusLine } from '../dom';
import type { Page } from '../main';

/** Parses the JSON editor's text, or throws an error that says where it is wrong. */
export function parseJson(text: string, what = 'Data'): unknown {
  if (!text.trim()) throw new Error(`${what} is empty: enter a JSON value, e.g. {"text": "hello"}.`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The trimmed value of a required field, or an error naming it. */
function need(input: HTMLInputElement, label: string): string {
  const v = input.value.trim();
  if (!v) {
    input.focus();
    throw new Error(`${label} is required.`);
  }
  return v;
}

function textInput(name: string, placeholder = '', required = true): HTMLInputElement {
  return h('input', { type: 'text', name, placeholder, autocomplete: 'off', spellcheck: 'false', required });
}

function jsonEditor(name: string, initial: string): HTMLTextAreaElement {
  const ta = h('textarea', { name, rows: 5, spellcheck: 'false', class: 'mono', 'aria-describedby': `${name}-hint` });
  ta.value = initial;
  return ta;
}

/**
 * A card with a form: `build` returns the params (throwing with a clear message when the input
 * is wrong); the result or error shows under the button.
 */
function actionCard(id: string, title: string, description: string, controls: HTMLElement[], method: string, build: () => unknown, button: string, danger = false, judge: (result: any) => string | null = () => null): HTMLElement {
  const status = statusLine();
  const submit = h('button', { type: 'submit', class: danger ? 'danger' : null }, button);
  const form = h('form', {
    class: 'card action',
    id,
    novalidate: true,
    'aria-labelledby': `${id}-h`,
    onsubmit: async (ev: SubmitEvent) => {
      ev.preventDefault();
      let params: unknown;
      try {
        params = build();
      } catch (e) {
        status.error((e as Error).message);
        return;
      }
      submit.disabled = true;
      status.info('Sending…');
      try {
        const result = await call(method, params);
        const problem = judge(result);
        if (problem) status.error(`${method}: ${problem} → ${JSON.stringify(result)}`);
        else status.ok(`Done: ${method} → ${JSON.stringify(result)}`);
      } catch (e) {
        status.error(`${method} failed: ${(e as Error).message}`);
      } finally {
        submit.disabled = false;
      }
    },
  }, h('h2', { id: `${id}-h` }, title), h('p', { class: 'muted small' }, description), controls, h('div', { class: 'row' }, submit), status.el);
  ctrlEnterSubmits(form);
  return form;
}

export function actionsPage(): Page {
  const pubChannel = textInput('channel', 'chat:index');
  const pubData = jsonEditor('publish-data', '{\n  "text": "hello from the admin UI"\n}');
  const publish = actionCard('publish', 'Publish', 'Sends data to one channel (every node delivers it).', [
    field('Channel', pubChannel), field('Data (JSON)', pubData, 'Ctrl+Enter sends.'),
  ], 'publish', () => ({ channel: need(pubChannel, 'Channel'), data: parseJson(pubData.value) }), 'Publish');

  const bcChannels = h('textarea', { name: 'channels', rows: 2, spellcheck: 'false', class: 'mono', placeholder: 'chat:a, chat:b' });
  const bcData = jsonEditor('broadcast-data', '{\n  "text": "hello, everyone"\n}');
  const broadcast = actionCard('broadcast', 'Broadcast', 'Sends the same data to several channels.', [
    field('Channels (comma or newline separated)', bcChannels), field('Data (JSON)', bcData, 'Ctrl+Enter sends.'),
  ], 'broadcast', () => {
    const channels = bcChannels.value.split(/[\s,]+/).map((c) => c.trim()).filter(Boolean);
    if (!channels.length) throw new Error('Enter at least one channel.');
    return { channels, data: parseJson(bcData.value) };
  }, 'Broadcast', false, (result) => {
    const failed = (result?.responses || []).filter((r: any) => r && r.error).length;
    return failed ? `${failed} of ${result.responses.length} channels failed` : null;
  });

  const subUser = textInput('user', 'user ID');
  const subChannel = textInput('channel', 'chat:index');
  const subscribe = actionCard('subscribe', 'Subscribe a user', "Subscribes all of the user's connections to a channel.", [
    field('User', subUser), field('Channel', subChannel),
  ], 'subscribe', () => ({ user: need(subUser, 'User'), channel: need(subChannel, 'Channel') }), 'Subscribe');

  const unsubUser = textInput('user', 'user ID');
  const unsubChannel = textInput('channel', 'chat:index');
  const unsubscribe = actionCard('unsubscribe', 'Unsubscribe a user', "Removes the user's connections from a channel.", [
    field('User', unsubUser), field('Channel', unsubChannel),
  ], 'unsubscribe', () => ({ user: need(unsubUser, 'User'), channel: need(unsubChannel, 'Channel') }), 'Unsubscribe');

  const discUser = textInput('user', 'user ID');
  const discCode = h('input', { type: 'number', name: 'code', min: 3000, max: 4999, value: 4000, required: true });
  const discReason = textInput('reason', 'disconnected by admin', false);
  const disconnect = actionCard('disconnect', 'Disconnect a user', 'Closes every connection of the user, on every node, with the code and reason given (3000-4999; 3500-3999 and 4500-4999 tell the SDK not to reconnect).', [
    field('User', discUser), h('div', { class: 'row2' }, field('Code', discCode), field('Reason', discReason)),
  ], 'disconnect', () => {
    const user = need(discUser, 'User');
    const code = Number(discCode.value);
    if (!Number.isInteger(code) || code < 3000 || code > 4999) throw new Error('The code must be a whole number from 3000 to 4999.');
    return { user, disconnect: { code, reason: discReason.value.trim() || 'disconnected by admin' } };
  }, 'Disconnect', true);

  const refUser = textInput('user', 'user ID');
  const refExpired = h('input', { type: 'checkbox', name: 'expired' });
  const refExpireAt = h('input', { type: 'number', name: 'expire_at', min: 0, placeholder: 'unix seconds (optional)' });
  const refresh = actionCard('refresh', 'Refresh a user', "Extends (or ends) the user's connection lifetime.", [
    field('User', refUser), h('div', { class: 'row2' }, field('Expire at', refExpireAt), h('label', { class: 'check' }, refExpired, ' Mark as expired')),
  ], 'refresh', () => {
    const params: Record<string, unknown> = { user: need(refUser, 'User'), expired: refExpired.checked };
    if (refExpireAt.value) params.expire_at = Number(refExpireAt.value);
    return params;
  }, 'Refresh');

  const hrChannel = textInput('channel', 'chat:index');
  const historyRemove = actionCard('history-remove', 'Remove history', "Deletes a channel's history (its offset and epoch stay).", [
    field('Channel', hrChannel),
  ], 'history_remove', () => ({ channel: need(hrChannel, 'Channel') }), 'Remove history', true);

  const el = h('section', { class: 'page', 'aria-labelledby': 'actions-h' },
    h('div', { class: 'page-head' }, h('h1', { id: 'actions-h' }, 'Actions')),
    h('div', { class: 'grid' }, publish, broadcast, disconnect, subscribe, unsubscribe, refresh, historyRemove));
  return { el };
}
