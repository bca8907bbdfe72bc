// The pages of one object: a block, a transaction, an account, a record.

import { Chain, Lifetime, nameOf, quorum, type View } from './app.js';
import { describeTx, hexToBytes, printable, bytesToHex, type Field } from './decode.js';
import { errorBox, fields, h, hashLink, link, message, section, short, time } from './dom.js';
import { accountProofBadge, blockProofBadge, recordProofBadge, txProofBadge } from './proof.js';
import { RpcError } from './rpc.js';
import type { Account, Block, Certificate, RecordInfo, Status, TxInfo, Validator } from './types.js';

/** Transactions listed on a block page; the rest are counted. */
const BLOCK_TXS_SHOWN = 500;
/** How often a pending transaction is asked about again. */
const PENDING_POLL_MS = 1_000;

function page(kind: string, title: string, ...children: Array<Node | null>): HTMLElement {
  return h('div', { class: 'view', 'data-view': kind }, h('h1', null, title), ...children);
}

/** Runs the async part of a view, showing its error in the page. */
function load(root: HTMLElement, life: Lifetime, f: () => Promise<void>): void {
  f().then(
    () => {
      if (life.alive) root.dataset.ready = 'true';
    },
    (e: unknown) => {
      if (!life.alive) return;
      root.append(errorBox(e instanceof RpcError && e.notFound ? `Not found: ${e.message}` : message(e)));
      root.dataset.ready = 'error';
    },
  );
}

export function certificateTable(cert: Certificate | null, set: Validator[], where: string): HTMLElement {
  if (!cert) return h('p', { class: 'muted' }, `This node holds no certificate for this block yet (${where}).`);
  const signed = new Set(cert.signatures.map((s) => s.validatorIndex));
  let total = 0n;
  let power = 0n;
  for (const v of set) {
    total += BigInt(v.power);
    if (signed.has(v.index)) power += BigInt(v.power);
  }
  const unknown = [...signed].filter((i) => !set.some((v) => v.index === i));
  const passes = quorum(power, total) && unknown.length === 0;
  return h(
    'div',
    { id: 'certificate', 'data-quorum': passes ? 'yes' : 'no' },
    h(
      'p',
      null,
      `Round ${cert.round}: signed by ${signed.size} of ${set.length} validators, power ${power} of ${total} — `,
      h('span', { class: passes ? 'yes' : 'no' }, passes ? 'more than 2/3: passes' : 'not more than 2/3: does not pass'),
      unknown.length ? h('span', { class: 'no' }, ` (signatures by unknown indexes ${unknown.join(', ')})`) : null,
    ),
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'list' },
        h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Validator'), h('th', null, 'Power'), h('th', null, 'Signed'))),
        h(
          'tbody',
          null,
          ...set.map((v) =>
            h(
              'tr',
              { 'data-validator': v.index },
              h('td', null, v.index),
              h('td', null, h('span', { title: v.publicKey }, v.name)),
              h('td', null, v.power),
              h('td', null, signed.has(v.index) ? h('span', { class: 'yes' }, 'signed') : h('span', { class: 'muted' }, '—')),
            ),
          ),
        ),
      ),
    ),
  );
}

export function blockView(chain: Chain, life: Lifetime, id: string): View {
  const root = page('block', /^\d+$/.test(id) ? `Block ${id}` : `Block ${short(id)}`);
  load(root, life, async () => {
    const b = /^\d+$/.test(id)
      ? await chain.rpc.call<Block>('ledger_getBlockByHeight', [id, false])
      : await chain.rpc.call<Block>('ledger_getBlockByHash', [id, false]);
    if (!life.alive) return;
    const height = BigInt(b.header.height);
    const [set, status] = await Promise.all([chain.setOf(b), chain.rpc.call<Status>('ledger_status')]);
    if (!life.alive) return;
    root.querySelector('h1')!.textContent = `Block ${b.header.height}`;
    const hd = b.header;
    const latest = BigInt(status.latestHeight);
    const nav = h(
      'nav',
      { class: 'pager' },
      height > 1n ? link(`#/block/${height - 1n}`, `← Block ${height - 1n}`, { id: 'prev-block' }) : h('span', { class: 'muted' }, 'First block'),
      height < latest ? link(`#/block/${height + 1n}`, `Block ${height + 1n} →`, { id: 'next-block' }) : h('span', { class: 'muted' }, 'Latest block'),
    );
    const txs = b.txHashes.slice(0, BLOCK_TXS_SHOWN);
    root.append(
      nav,
      blockProofBadge(height),
      section(
        'Header',
        fields([
          ['Hash', h('span', { class: 'mono wrap' }, b.hash), 'hash'],
          ['Height', hd.height, 'height'],
          ['Time', `${time(hd.timeMs)} (${hd.timeMs} ms)`, 'time'],
          ['Proposer', [nameOf(set, hd.proposer), ' ', h('span', { class: 'mono muted wrap' }, hd.proposer)], 'proposer'],
          ['Transactions', b.txHashes.length, 'tx-count'],
          ['Chain', hd.chainId],
          ['Previous hash', height > 1n ? link(`#/block/${height - 1n}`, hd.prevHash, { class: 'mono wrap' }) : h('span', { class: 'mono wrap' }, hd.prevHash)],
          ['Tx root', h('span', { class: 'mono wrap' }, hd.txRoot)],
          ['State root', h('span', { class: 'mono wrap' }, hd.stateRoot)],
          ['Validators hash', h('span', { class: 'mono wrap' }, hd.validatorsHash)],
          ['Next validators hash', h('span', { class: 'mono wrap' }, hd.nextValidatorsHash)],
          ['Last commit hash', h('span', { class: 'mono wrap' }, hd.lastCommitHash)],
        ]),
      ),
      section(
        `Transactions (${b.txHashes.length})`,
        b.txHashes.length === 0
          ? h('p', { class: 'muted' }, 'No transactions in this block.')
          : h(
              'ol',
              { id: 'block-txs', class: 'txs', start: 0 },
              ...txs.map((t) => h('li', null, link(`#/tx/${t}`, t, { class: 'mono wrap' }))),
            ),
        b.txHashes.length > txs.length ? h('p', { class: 'muted' }, `and ${b.txHashes.length - txs.length} more`) : null,
      ),
      section('Commit certificate', certificateTable(b.certificate, set, 'ledger_getBlockByHeight')),
    );
  });
  return { root };
}

function fieldRows(list: Field[]): Array<[string, Node | string]> {
  return list.map((f) => {
    if (f.link === 'account') return [f.label, hashLink('account', f.value, 32)];
    if (f.link === 'tx') return [f.label, hashLink('tx', f.value, 32)];
    if (f.record) return [f.label, link(`#/record/${f.record}`, f.value, { class: 'mono wrap' })];
    return [f.label, h('span', { class: 'mono wrap' }, f.value)];
  });
}

export function txView(chain: Chain, life: Lifetime, hash: string): View {
  const root = page('tx', `Transaction ${short(hash)}`);
  const statusEl = h('span', { id: 'tx-status', class: 'pill' }, '…');
  const body = h('div');
  root.append(h('p', null, 'Status: ', statusEl), body);
  const render = (t: TxInfo) => {
    statusEl.dataset.status = t.status;
    statusEl.className = `pill status-${t.status}`;
    statusEl.textContent = t.status;
    const parts: Array<Node | null> = [];
    const rows: Array<[string, Node | string | Array<Node | string>, string?]> = [['Hash', h('span', { class: 'mono wrap' }, t.hash), 'hash']];
    if (t.status === 'rejected') rows.push(['Reason', h('span', { class: 'no' }, t.reason ?? 'no reason given'), 'reason']);
    if (t.height !== undefined) rows.push(['Block', link(`#/block/${t.height}`, t.height, { id: 'tx-block' }), 'block']);
    if (t.index !== undefined) rows.push(['Index in block', String(t.index), 'index']);
    parts.push(section('Transaction', fields(rows)));
    if (t.tx) {
      try {
        const d = describeTx(hexToBytes(t.tx));
        parts.push(
          section(
            'Decoded',
            fields([
              ['Operation', h('strong', null, d.op), 'op'],
              ['Sender', hashLink('account', d.sender, 32), 'sender'],
              ['Nonce', d.nonce.toString(), 'nonce'],
              ...fieldRows(d.fields),
              ['Chain', d.chainId],
              ['Signature', h('span', { class: 'mono wrap muted' }, d.signature)],
              ['Size', `${(t.tx.length - 2) / 2} bytes`],
            ]),
          ),
        );
      } catch (e) {
        parts.push(errorBox(`The transaction's encoding does not decode: ${message(e)}`));
      }
    }
    if (t.status === 'committed') parts.unshift(txProofBadge(t.hash));
    else if (t.status === 'pending') parts.unshift(h('p', { class: 'muted' }, 'Waiting for it to commit; this page follows it.'));
    body.replaceChildren(...parts.filter((p): p is Node => p !== null));
  };
  load(root, life, async () => {
    let t = await chain.rpc.call<TxInfo>('ledger_getTx', [hash]);
    if (!life.alive) return;
    render(t);
    // A pending transaction is followed until it commits or is rejected.
    while (t.status === 'pending' && life.alive) {
      await new Promise((r) => setTimeout(r, PENDING_POLL_MS));
      if (!life.alive) return;
      const next = await chain.rpc.call<TxInfo>('ledger_getTx', [hash]);
      if (next.status !== t.status) render(next);
      t = next;
    }
  });
  return { root };
}

export function accountView(chain: Chain, life: Lifetime, account: string): View {
  const root = page('account', `Account ${short(account)}`);
  load(root, life, async () => {
    const a = await chain.rpc.call<Account>('ledger_getAccount', [account, false]);
    if (!life.alive) return;
    root.append(
      accountProofBadge(account),
      section(
        'Account',
        a.exists ? null : h('p', { class: 'muted', id: 'account-missing' }, 'No such account at this height (the proof below is a proof of absence).'),
        fields([
          ['Key', h('span', { class: 'mono wrap' }, account), 'key'],
          ['Balance', a.balance, 'balance'],
          ['Nonce', a.nonce, 'nonce'],
          ['Role', a.role ?? '—', 'role'],
          ['Active', a.active ? 'yes' : 'no (revoked or not admitted)', 'active'],
          ['At height', link(`#/block/${a.height}`, a.height), 'height'],
        ]),
      ),
    );
  });
  return { root };
}

/** A record key from the page's address: `0x…` hex, or text as UTF-8. */
export function recordKey(key: string): Uint8Array {
  return /^0x([0-9a-fA-F]{2})*$/.test(key) ? hexToBytes(key) : new TextEncoder().encode(key);
}

export function recordView(chain: Chain, life: Lifetime, owner: string, keyText: string): View {
  const key = recordKey(keyText);
  const text = printable(key);
  const root = page('record', `Record ${text ?? bytesToHex(key)}`);
  load(root, life, async () => {
    const r = await chain.rpc.call<RecordInfo>('ledger_getRecord', [owner, bytesToHex(key), false]);
    if (!life.alive) return;
    const value = r.value !== undefined ? hexToBytes(r.value) : null;
    const shown = value ? printable(value) : null;
    root.append(
      recordProofBadge(owner, key),
      section(
        'Record',
        r.exists ? null : h('p', { class: 'muted', id: 'record-missing' }, 'No such record at this height (the proof below is a proof of absence).'),
        fields([
          ['Owner', hashLink('account', owner, 32), 'owner'],
          ['Key', h('span', { class: 'mono wrap' }, text !== null ? `${JSON.stringify(text)} (${bytesToHex(key)})` : bytesToHex(key)), 'key'],
          ['Value', value ? h('span', { class: 'mono wrap' }, shown !== null ? JSON.stringify(shown) : bytesToHex(value)) : '—', 'value'],
          ['Value (hex)', value ? h('span', { class: 'mono wrap muted' }, bytesToHex(value)) : '—'],
          ['Value size', value ? `${value.length} bytes` : '—'],
          ['At height', link(`#/block/${r.height}`, r.height), 'height'],
        ]),
      ),
    );
  });
  return { root };
}
