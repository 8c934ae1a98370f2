// A tiny DOM builder. Every string child becomes a text node and every attribute is set with
// setAttribute, so user, channel and payload text is always shown as text (never parsed as HTML).

export type Child = Node | string | number | null | undefined | false | Child[];
type Handler = (ev: any) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as Handler);
    } else if (key === 'value' && 'value' in el) {
      (el as unknown as HTMLInputElement).value = String(value);
    } else if (key === 'checked' && 'checked' in el) {
      (el as unknown as HTMLInputElement).checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

let nextId = 0;
/** A unique element id, for label/for pairs. */
export function uid(prefix = 'f'): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form field: returns the wrapper and the control. */
export function field<T extends HTMLElement>(label: string, control: T, hint?: string): HTMLElement {
  if (!control.id) control.id = uid();
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A status line that shows a message, an error or nothing. */
export function statusLine(): { el: HTMLElement; ok(msg: string): void; error(msg: string): void; info(msg: string): void; clear(): void } {
  const el = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const set = (kind: string, msg: string) => {
    el.className = `status ${kind}`;
    el.textContent = msg;
  };
  return {
    el,
    ok: (msg) => set('ok', msg),
    error: (msg) => set('error', msg),
    info: (msg) => set('info', msg),
    clear: () => set('', ''),
  };
}

/** Submits the form on Ctrl/Cmd+Enter inside a textarea (Enter alone submits from inputs). */
export function ctrlEnterSubmits(form: HTMLFormElement): void {
  form.addEventListener('keydown', (ev: KeyboardEvent) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && ev.target instanceof HTMLTextAreaElement) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
}

/** JSON text, compact for one line. */
export function compact(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function pretty(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

export function formatUptime(seconds: number): string {
  if (!seconds) return '–';
  const d = Math.floor(seconds / 86400);
  const hh = Math.floor((seconds % 86400) / 3600);
  const mm = Math.floor((seconds % 3600) / 60);
  const ss = Math.floor(seconds % 60);
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

const SVG = 'http://www.w3.org/2000/svg';

/** A small inline SVG line chart of `values` (at least two points), with its last value as title. */
export function sparkline(values: number[], label: string, width = 120, height = 28): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${label}: ${values.length ? values[values.length - 1] : 'no data'}`);
  const title = document.createElementNS(SVG, 'title');
  title.textContent = `${label} over this session (min ${values.length ? Math.min(...values) : 0}, max ${values.length ? Math.max(...values) : 0})`;
  svg.appendChild(title);
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1);
  const min = Math.min(...values, 0);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`);
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('points', `0,${height} ${pts.join(' ')} ${width},${height}`);
  area.setAttribute('class', 'spark-area');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('class', 'spark-line');
  svg.append(area, line);
  return svg;
}
