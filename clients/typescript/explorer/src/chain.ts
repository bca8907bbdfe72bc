// Views of the chain as a whole: the validators and the evidence.

import { Chain, Lifetime, type View } from './app.js';
import { append, errorBox, h, link, message, section } from './dom.js';
import { RpcError } from './rpc.js';
import type { Block, EvidencePage, Status, Validator } from './types.js';

/** Recent blocks whose certificates and proposers the validators page counts. */
const RECENT_BLOCKS = 100;
/** Evidence asked per page (the node's limit is 100). */
const EVIDENCE_PAGE = 100;

export function validatorsView(chain: Chain, life: Lifetime): View {
  const root = h('div', { class: 'view', 'data-view': 'validators' }, h('h1', null, 'Validators'));
  const run = async () => {
    const [set, status] = await Promise.all([chain.rpc.call<Validator[]>('ledger_getValidators'), chain.rpc.call<Status>('ledger_status')]);
    if (!life.alive) return;
    const latest = Number(status.latestHeight);
    const n = Math.min(RECENT_BLOCKS, latest);
    const heights = Array.from({ length: n }, (_, i) => [String(latest - i), false]);
    const blocks = (await chain.rpc.many<Block>('ledger_getBlockByHeight', heights)).filter((b): b is Block => !(b instanceof RpcError));
    if (!life.alive) return;
    // Counted by consensus key, since indexes change when the set does.
    const signed = new Map<string, number>();
    const proposed = new Map<string, number>();
    const names = new Map<string, string>();
    for (const b of blocks) {
      proposed.set(b.header.proposer, (proposed.get(b.header.proposer) ?? 0) + 1);
      if (!b.certificate) continue;
      const of = await chain.setOf(b);
      for (const v of of) names.set(v.publicKey, v.name);
      for (const s of b.certificate.signatures) {
        const v = of.find((x) => x.index === s.validatorIndex);
        if (v) signed.set(v.publicKey, (signed.get(v.publicKey) ?? 0) + 1);
      }
    }
    if (!life.alive) return;
    const total = set.reduce((t, v) => t + BigInt(v.power), 0n);
    const share = (p: string) => (total > 0n ? `${(Number((BigInt(p) * 10000n) / total) / 100).toFixed(2)} %` : '—');
    const former = [...new Set([...signed.keys(), ...proposed.keys()])].filter((k) => !set.some((v) => v.publicKey === k));
    const counted = blocks.length;
    append(root, [
      h(
        'p',
        { class: 'muted' },
        `The set that decides the next block (height ${latest + 1}): ${set.length} validators, total power ${total}. `,
        counted > 0 ? `Signed and proposed: over the last ${counted} blocks (${latest - counted + 1} to ${latest}).` : 'No blocks yet.',
      ),
      h(
        'p',
        { class: 'muted' },
        'Signed counts the certificates this node stores: a certificate holds the precommits gathered until more than 2/3 of the power had signed, so a validator missing from one may still have voted.',
      ),
      section(
        'Current set',
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { id: 'validators', class: 'list' },
            h('thead', null, h('tr', null, ...['#', 'Name', 'Power', 'PeerId', 'Consensus key', 'Signed', 'Proposed'].map((t) => h('th', null, t)))),
            h(
              'tbody',
              null,
              ...set.map((v) =>
                h(
                  'tr',
                  { 'data-validator': v.name },
                  h('td', null, v.index),
                  h('td', null, h('strong', null, v.name)),
                  h('td', null, `${v.power} (${share(v.power)})`),
                  h('td', { class: 'mono wrap', 'data-col': 'peer-id' }, v.peerId),
                  h('td', { class: 'mono', title: v.publicKey }, v.publicKey.slice(0, 14) + '…'),
                  h('td', { 'data-col': 'signed' }, `${signed.get(v.publicKey) ?? 0} / ${counted}`),
                  h('td', { 'data-col': 'proposed' }, `${proposed.get(v.publicKey) ?? 0} / ${counted}`),
                ),
              ),
            ),
          ),
        ),
      ),
      former.length
        ? section(
            'No longer in the set',
            h(
              'ul',
              null,
              ...former.map((k) => h('li', null, `${names.get(k) ?? k}: signed ${signed.get(k) ?? 0}, proposed ${proposed.get(k) ?? 0} of the last ${counted} blocks`)),
            ),
          )
        : null,
    ]);
  };
  run().then(
    () => life.alive && (root.dataset.ready = 'true'),
    (e: unknown) => {
      if (!life.alive) return;
      root.append(errorBox(message(e)));
      root.dataset.ready = 'error';
    },
  );
  return { root };
}

export function evidenceView(chain: Chain, life: Lifetime): View {
  const root = h('div', { class: 'view', 'data-view': 'evidence' }, h('h1', null, 'Evidence'));
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const table = h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      { id: 'evidence', class: 'list' },
      h('thead', null, h('tr', null, ...['Height', 'Round', 'Step', 'Validator', 'First vote', 'Second vote'].map((t) => h('th', null, t)))),
      tbody,
    ),
  );
  const holder = section('Equivocations recorded by this node', h('p', { class: 'muted' }, 'Asking the node…'));
  root.append(holder);
  let cursor: string | null = null;
  let count = 0;
  const nameAt = new Map<string, Promise<Validator[]>>();
  const validator = async (height: string, index: number) => {
    let p = nameAt.get(height);
    if (!p) {
      p = chain.rpc.call<Validator[]>('ledger_getValidators', [height]);
      nameAt.set(height, p);
    }
    const set = await p.catch(() => [] as Validator[]);
    return set.find((v) => v.index === index)?.name ?? `#${index}`;
  };
  const vote = (hex: string) => h('span', { class: 'mono', title: hex }, `${(hex.length - 2) / 2} bytes, ${hex.slice(0, 18)}…`);
  const page = async () => {
    const res: EvidencePage = await chain.rpc.call<EvidencePage>('ledger_getEvidence', cursor ? [null, cursor, EVIDENCE_PAGE] : [null, null, EVIDENCE_PAGE]);
    if (!life.alive) return;
    for (const e of res.evidence) {
      count++;
      tbody.append(
        h(
          'tr',
          { 'data-evidence': `${e.height}/${e.round}/${e.kind}/${e.validatorIndex}` },
          h('td', null, link(`#/block/${e.height}`, e.height)),
          h('td', null, e.round),
          h('td', null, e.kind),
          h('td', null, await validator(e.height, e.validatorIndex)),
          h('td', null, vote(e.first)),
          h('td', null, vote(e.second)),
        ),
      );
    }
    cursor = res.nextCursor;
    more.hidden = cursor === null;
    holder.replaceChildren(
      h('h2', null, 'Equivocations recorded by this node'),
      count === 0 ? h('p', { id: 'evidence-empty', class: 'empty' }, 'No evidence recorded') : table,
      more,
    );
  };
  const run = (first: boolean) =>
    page().then(
      () => first && life.alive && (root.dataset.ready = 'true'),
      (e: unknown) => {
        if (!life.alive) return;
        root.append(errorBox(message(e)));
        root.dataset.ready = 'error';
      },
    );
  more.addEventListener('click', () => void run(false));
  void run(true);
  return { root };
}
