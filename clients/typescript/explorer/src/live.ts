// The live view: blocks as they commit (newHeads over the WebSocket), the
// rates over the last minute, and the node's status, refreshed.

import { Chain, Lifetime, nameOf, type View } from './app.js';
import { bytesSize, clock, errorBox, fields, h, hashLink, link, message, section } from './dom.js';
import { RpcError, type Head } from './rpc.js';
import type { Block, Certificate, Status } from './types.js';

/** Rows shown in the table of latest blocks. */
const ROWS_MAX = 30;
/** Blocks fetched at most when the view opens, or to fill a gap after a reconnection. */
const BACKFILL_MAX = 120;
/** Blocks kept in memory for the rates (older ones are dropped). */
const KEEP_MAX = 2_000;
/** Blocks with more transactions than this are not fetched whole just to show their size. */
const SIZE_TXS_MAX = 1_000;
const RATE_WINDOW_MS = 60_000;
const STATUS_EVERY_MS = 2_000;

interface Summary {
  height: number;
  hash: string;
  timeMs: number;
  txCount: number;
  block?: Block;
  row?: HTMLTableRowElement;
  detailsAsked?: boolean;
}

function hex(s: string): number {
  return (s.length - 2) / 2;
}

/** The block's encoded size: header, transaction list, and the parent's certificate as this node stores it. */
function blockSize(b: Block, parentCert: Certificate | null): number | null {
  if (!b.txs) return null;
  const txBytes = b.txs.reduce((n, t) => n + hex(t), 0);
  return hex(b.encodedHeader) + 4 + txBytes + 1 + (parentCert ? hex(parentCert.encoded) : 0);
}

export function liveView(chain: Chain, life: Lifetime): View {
  const { rpc, feed } = chain;
  const known = new Map<number, Summary>();
  const tbody = h('tbody');
  const stateEl = h('span', { id: 'live-state', class: 'pill', 'data-live': feed.state }, '');
  const rateBlocks = h('span', { id: 'rate-blocks', class: 'big' }, '—');
  const rateTxs = h('span', { id: 'rate-txs', class: 'big' }, '—');
  const rateSpan = h('div', { class: 'muted', id: 'rate-span' }, '');
  const statusBox = h('div', { id: 'node-status' }, h('p', { class: 'muted' }, 'Asking the node…'));
  const problems = h('div', { id: 'live-errors' });

  const report = (what: string, e: unknown) => {
    problems.replaceChildren(errorBox(`${what}: ${message(e)}`));
  };

  const root = h(
    'div',
    { class: 'view', 'data-view': 'live' },
    problems,
    h(
      'div',
      { class: 'grid' },
      section('Node', statusBox),
      section('Throughput', h('div', { class: 'rates' }, h('div', null, rateBlocks, h('span', null, ' blocks/s')), h('div', null, rateTxs, h('span', null, ' tx/s'))), rateSpan),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Latest blocks ', stateEl),
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          { id: 'live-blocks', class: 'list' },
          h('thead', null, h('tr', null, ...['Height', 'Time', 'Proposer', 'Txs', 'Round', 'Size', 'Hash'].map((t) => h('th', null, t)))),
          tbody,
        ),
      ),
    ),
  );

  life.onEnd(
    feed.onState((s, detail) => {
      stateEl.dataset.live = s;
      stateEl.textContent = s === 'subscribed' ? 'live' : s;
      stateEl.title = detail;
    }),
  );

  // Rows: newest first, at most ROWS_MAX.
  const place = (s: Summary) => {
    if (s.row) return;
    const rows = Array.from(tbody.children) as HTMLTableRowElement[];
    const before = rows.find((r) => Number(r.dataset.height) < s.height);
    if (!before && rows.length >= ROWS_MAX) return; // older than everything shown
    const row = h(
      'tr',
      { 'data-height': s.height },
      h('td', null, link(`#/block/${s.height}`, s.height)),
      h('td', { class: 'mono' }, clock(s.timeMs)),
      h('td', { 'data-col': 'proposer' }, '…'),
      h('td', { 'data-col': 'txs' }, s.txCount),
      h('td', { 'data-col': 'round' }, '…'),
      h('td', { 'data-col': 'size' }, '…'),
      h('td', null, hashLink('block', s.hash, 6)),
    );
    s.row = row;
    tbody.insertBefore(row, before ?? null);
    while (tbody.children.length > ROWS_MAX) {
      const last = tbody.lastElementChild as HTMLTableRowElement;
      const gone = known.get(Number(last.dataset.height));
      if (gone) gone.row = undefined;
      last.remove();
    }
    void details(s);
  };

  const cell = (s: Summary, col: string, v: Node | string) => {
    const td = s.row?.querySelector(`[data-col="${col}"]`);
    if (td) td.replaceChildren(v);
  };

  // Proposer, round and size need the block itself, asked once per shown row.
  const details = async (s: Summary) => {
    if (s.detailsAsked) return;
    s.detailsAsked = true;
    try {
      let b = s.block;
      if (!b || (!b.txs && s.txCount > 0 && s.txCount <= SIZE_TXS_MAX)) {
        b = await rpc.call<Block>('ledger_getBlockByHeight', [String(s.height), s.txCount > 0 && s.txCount <= SIZE_TXS_MAX]);
        s.block = b;
      }
      if (!life.alive) return;
      if (s.txCount === 0) b.txs ??= [];
      const set = await chain.setOf(b);
      cell(s, 'proposer', h('span', { title: b.header.proposer }, nameOf(set, b.header.proposer)));
      cell(s, 'round', b.certificate ? String(b.certificate.round) : '—');
      let parent: Certificate | null = null;
      if (s.height > 1) {
        parent = known.get(s.height - 1)?.block?.certificate ?? (await rpc.call<Certificate>('ledger_getCommit', [String(s.height - 1)]));
      }
      const size = blockSize(b, parent);
      cell(s, 'size', size === null ? h('span', { title: `more than ${SIZE_TXS_MAX} transactions` }, 'large') : bytesSize(size));
    } catch (e) {
      s.detailsAsked = false;
      if (life.alive) cell(s, 'proposer', h('span', { class: 'no', title: message(e) }, 'error'));
    }
  };

  const add = (s: Summary) => {
    const had = known.get(s.height);
    if (had) {
      had.block ??= s.block;
      return;
    }
    known.set(s.height, s);
    if (known.size > KEEP_MAX) {
      const oldest = Math.min(...known.keys());
      known.delete(oldest);
    }
    place(s);
  };

  const fromBlock = (b: Block): Summary => ({
    height: Number(b.header.height),
    hash: b.hash,
    timeMs: Number(b.header.timeMs),
    txCount: b.txHashes.length,
    block: b,
  });

  // Fetches heights [from, to] (at most BACKFILL_MAX, the newest ones).
  const backfill = async (from: number, to: number) => {
    from = Math.max(from, to - BACKFILL_MAX + 1, 1);
    if (to < from) return;
    const heights: number[] = [];
    for (let x = to; x >= from; x--) if (!known.has(x)) heights.push(x);
    const res = await rpc.many<Block>('ledger_getBlockByHeight', heights.map((x) => [String(x), false]));
    if (!life.alive) return;
    for (const r of res) if (!(r instanceof RpcError)) add(fromBlock(r));
    rates();
  };

  let top = 0;
  life.onEnd(
    feed.onHead((head: Head) => {
      const height = Number(head.height);
      const gapFrom = top > 0 && height > top + 1 ? top + 1 : 0;
      top = Math.max(top, height);
      add({ height, hash: head.hash, timeMs: Number(head.timeMs), txCount: head.txCount });
      rates();
      if (gapFrom) backfill(gapFrom, height - 1).catch((e) => report('Fetching missed blocks', e));
    }),
  );

  const rates = () => {
    const now = Date.now();
    if (known.size === 0) return;
    const lowest = Math.min(...known.keys());
    const lowestTime = known.get(lowest)?.timeMs ?? now;
    // What the page knows covers the minute only if it knows a block from before it.
    const start = Math.max(now - RATE_WINDOW_MS, lowestTime);
    const span = (now - start) / 1000;
    let blocks = 0;
    let txs = 0;
    for (const s of known.values()) {
      if (s.timeMs > start) {
        blocks++;
        txs += s.txCount;
      }
    }
    if (span < 1) {
      rateSpan.textContent = 'measuring…';
      return;
    }
    rateBlocks.textContent = (blocks / span).toFixed(2);
    rateTxs.textContent = (txs / span).toFixed(1);
    rateSpan.textContent =
      span >= 59.5
        ? 'over the last minute'
        : `over the last ${Math.round(span)} s (${lowest === 1 ? 'all the chain has' : 'the blocks this page has fetched'})`;
  };
  life.interval(rates, 1_000);

  const showStatus = (st: Status) => {
    top = Math.max(top, Number(st.latestHeight));
    statusBox.replaceChildren(
      fields([
        ['Role', h('span', { class: 'pill' }, st.role), 'role'],
        ['Chain', st.chainId, 'chain'],
        ['Height', link(`#/block/${st.latestHeight}`, st.latestHeight), 'height'],
        ['Catching up', st.catchingUp ? h('span', { class: 'no' }, `yes, ${st.sync.blocksBehind} blocks behind`) : 'no', 'catching-up'],
        ['Peers', st.peers, 'peers'],
        ['Round', st.round, 'round'],
        ['Node', h('span', { class: 'mono wrap' }, st.nodeId), 'node-id'],
      ]),
    );
  };

  const refresh = async () => {
    try {
      const st = await rpc.call<Status>('ledger_status');
      if (!life.alive) return;
      showStatus(st);
      problems.replaceChildren();
      return st;
    } catch (e) {
      if (life.alive) report('Node status', e);
      return undefined;
    }
  };
  life.interval(() => void refresh(), STATUS_EVERY_MS);

  void (async () => {
    const st = await refresh();
    if (!st || !life.alive) return;
    const latest = Number(st.latestHeight);
    const timeBack = Math.ceil(RATE_WINDOW_MS / 500); // enough for a minute at two blocks a second
    try {
      await backfill(latest - Math.min(timeBack, BACKFILL_MAX) + 1, latest);
    } catch (e) {
      report('Fetching the latest blocks', e);
    }
    if (life.alive) root.dataset.ready = 'true';
  })();

  return { root };
}
