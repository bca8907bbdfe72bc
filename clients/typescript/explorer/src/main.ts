// Tally's block explorer: a single page with hash routes.
//   #/                     live view
//   #/block/<height|hash>  a block
//   #/tx/<hash>            a transaction
//   #/account/<key>        an account
//   #/record/<owner>/<key> a record (key as text, or 0x hex)
//   #/validators, #/evidence
//   #/search/<query>       what the search box asks

import { Chain, Lifetime, type View } from './app.js';
import { evidenceView, validatorsView } from './chain.js';
import { errorBox, h, message } from './dom.js';
import { liveView } from './live.js';
import { accountView, blockView, recordView, txView } from './pages.js';
import { initProofs } from './proof.js';
import { HeadFeed, Rpc, RpcError, loadEndpoint } from './rpc.js';
import type { Account } from './types.js';

const HASH = /^(0x)?[0-9a-fA-F]{64}$/;
/** The longest search input considered (an owner, a slash and a 256-byte key in hex). */
const QUERY_MAX = 2 + 64 + 1 + 2 + 512;

function normHash(s: string): string {
  return (s.startsWith('0x') ? s : '0x' + s).toLowerCase();
}

function isNotFound(e: unknown): boolean {
  return e instanceof RpcError && e.notFound;
}

/** Where a search leads, or a message saying why it leads nowhere. */
async function resolve(chain: Chain, raw: string): Promise<{ route: string } | { miss: string }> {
  const q = raw.trim();
  if (q === '') return { miss: 'Type a height, a block or transaction hash, an account key or a record name (owner/key).' };
  if (q.length > QUERY_MAX) return { miss: `That is ${q.length} characters long; nothing searchable is longer than ${QUERY_MAX}.` };
  if (/^\d+$/.test(q)) {
    try {
      await chain.rpc.call('ledger_getBlockByHeight', [q, false]);
      return { route: `#/block/${BigInt(q)}` };
    } catch (e) {
      if (!isNotFound(e)) throw e;
      return { miss: `No block at height ${q} yet.` };
    }
  }
  const slash = q.indexOf('/');
  if (slash > 0) {
    const owner = q.slice(0, slash);
    const key = q.slice(slash + 1);
    if (!HASH.test(owner)) return { miss: `In a record name owner/key, the owner is an account key (64 hex digits); "${owner}" is not.` };
    if (key === '') return { miss: 'The record name has no key after the slash.' };
    return { route: `#/record/${normHash(owner)}/${encodeURIComponent(key)}` };
  }
  if (HASH.test(q)) {
    const hash = normHash(q);
    const tries: Array<[string, unknown[], string]> = [
      ['ledger_getBlockByHash', [hash, false], `#/block/${hash}`],
      ['ledger_getTx', [hash], `#/tx/${hash}`],
    ];
    for (const [method, params, route] of tries) {
      try {
        await chain.rpc.call(method, params);
        return { route };
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    const a = await chain.rpc.call<Account>('ledger_getAccount', [hash, false]);
    if (a.exists) return { route: `#/account/${hash}` };
    return { miss: `No block, transaction or account has the hash or key ${hash}.` };
  }
  return { miss: `"${q}" is not a height, a 32-byte hex hash or account key, nor a record name (owner/key).` };
}

function searchView(chain: Chain, life: Lifetime, q: string): View {
  const result = h('p', { id: 'search-result' }, `Searching for ${q}…`);
  const root = h('div', { class: 'view', 'data-view': 'search' }, h('h1', null, 'Search'), result);
  resolve(chain, q).then(
    (r) => {
      if (!life.alive) return;
      if ('route' in r) {
        location.replace(r.route);
        return;
      }
      result.dataset.found = 'none';
      result.className = 'empty';
      result.textContent = r.miss;
      root.dataset.ready = 'true';
    },
    (e: unknown) => {
      if (!life.alive) return;
      result.replaceWith(errorBox(`The search failed: ${message(e)}`));
      root.dataset.ready = 'error';
    },
  );
  return { root };
}

function route(chain: Chain, life: Lifetime, hash: string): View {
  const parts = hash.replace(/^#\/?/, '').split('/');
  const [kind, a, ...rest] = parts;
  const arg = a !== undefined ? decodeURIComponent(a) : '';
  switch (kind) {
    case '':
    case 'live':
      return liveView(chain, life);
    case 'block':
      if (/^\d+$/.test(arg) || HASH.test(arg)) return blockView(chain, life, HASH.test(arg) ? normHash(arg) : arg);
      break;
    case 'tx':
      if (HASH.test(arg)) return txView(chain, life, normHash(arg));
      break;
    case 'account':
      if (HASH.test(arg)) return accountView(chain, life, normHash(arg));
      break;
    case 'record':
      if (HASH.test(arg) && rest.length > 0) return recordView(chain, life, normHash(arg), decodeURIComponent(rest.join('/')));
      break;
    case 'validators':
      return validatorsView(chain, life);
    case 'evidence':
      return evidenceView(chain, life);
    case 'search':
      return searchView(chain, life, arg);
  }
  return { root: h('div', { class: 'view', 'data-view': 'unknown', 'data-ready': 'error' }, errorBox(`No page at ${hash}: check the address.`)) };
}

async function main(): Promise<void> {
  const view = document.getElementById('view') as HTMLElement;
  const form = document.getElementById('search') as HTMLFormElement;
  const input = form.querySelector('input') as HTMLInputElement;
  const conn = document.getElementById('conn') as HTMLElement;
  const tip = document.getElementById('tip') as HTMLElement;

  const endpoint = await loadEndpoint();
  const rpc = new Rpc(endpoint);
  const feed = new HeadFeed(endpoint.ws);
  const chain = new Chain(rpc, feed);
  initProofs(endpoint.http);
  conn.textContent = endpoint.http;

  feed.onState((s, detail) => {
    tip.dataset.live = s;
    tip.textContent = s === 'subscribed' ? 'live' : detail;
  });
  feed.onHead((head) => {
    tip.textContent = `height ${head.height}`;
  });

  let life = new Lifetime();
  const show = () => {
    life.end();
    life = new Lifetime();
    const hash = location.hash || '#/';
    for (const a of document.querySelectorAll<HTMLAnchorElement>('header nav a')) {
      a.classList.toggle('active', hash === a.getAttribute('href') || (a.getAttribute('href') === '#/' && hash === '#/live'));
    }
    try {
      const v = route(chain, life, hash);
      view.replaceChildren(v.root);
      if (v.dispose) life.onEnd(v.dispose);
    } catch (e) {
      view.replaceChildren(errorBox(message(e)));
    }
    window.scrollTo(0, 0);
  };
  window.addEventListener('hashchange', show);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    const target = `#/search/${encodeURIComponent(q)}`;
    if (location.hash === target) show();
    else location.hash = target;
  });
  show();
}

main().catch((e: unknown) => {
  const view = document.getElementById('view');
  view?.replaceChildren(errorBox(`The explorer could not start: ${message(e)}`));
});
