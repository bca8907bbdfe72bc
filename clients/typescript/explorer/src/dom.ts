// A small element builder (text only through textContent, so nothing from
// the chain is ever parsed as HTML) and the formatting the views share.

type Child = Node | string | number | bigint | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | null | ((ev: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
      else if (k === 'class') el.className = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function link(href: string, text: Child, attrs: Attrs = {}): HTMLAnchorElement {
  return h('a', { href, ...attrs }, text);
}

/** `0x1234…cdef` for long hex, with the whole value in the tooltip. */
export function short(hex: string, keep = 8): string {
  return hex.length > 2 + 2 * keep ? `${hex.slice(0, 2 + keep)}…${hex.slice(-keep)}` : hex;
}

export function hashLink(kind: 'block' | 'tx' | 'account', hex: string, keep = 8): HTMLAnchorElement {
  return link(`#/${kind}/${hex}`, short(hex, keep), { title: hex, class: 'mono' });
}

export function time(ms: string | number | bigint): string {
  const d = new Date(Number(ms));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function clock(ms: string | number | bigint): string {
  return time(ms).slice(11);
}

export function bytesSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** A two-column table of label → value. */
export function fields(rows: Array<[string, Child | Child[], string?]>): HTMLTableElement {
  return h(
    'table',
    { class: 'fields' },
    h(
      'tbody',
      null,
      ...rows.map(([label, value, key]) => {
        const td = h('td', key ? { 'data-field': key } : null);
        append(td, Array.isArray(value) ? value : [value]);
        return h('tr', null, h('th', { scope: 'row' }, label), td);
      }),
    ),
  );
}

export function section(title: string, ...children: Child[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

export function errorBox(message: string): HTMLElement {
  return h('div', { class: 'error', role: 'alert', 'data-error': '' }, message);
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Replaces an element's children, skipping the empty ones. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}
