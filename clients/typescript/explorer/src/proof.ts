// Proof badges: each proof is checked in the browser by the client library,
// down to the genesis validator set, and the badge says what held.

import { TallyClient, verifyAccountProof, verifyBlock, verifyRecordProof, verifyTxProof, type ProofReport } from '../../src/index.js';
import { fill, h, message } from './dom.js';

let client: TallyClient | null = null;

export function initProofs(httpUrl: string): void {
  client = new TallyClient(httpUrl);
}

function badge(what: string, run: (c: TallyClient) => Promise<ProofReport>): HTMLElement {
  const label = h('span', { class: 'badge-label' }, `Checking the ${what} proof…`);
  const detail = h('div', { class: 'proof-detail' });
  const el = h('div', { id: 'proof', class: 'proof', 'data-proof': 'checking' }, label, detail);
  const c = client;
  if (!c) {
    el.dataset.proof = 'failed';
    label.textContent = 'Proof not checked: no client';
    return el;
  }
  run(c).then(
    (r) => {
      el.dataset.proof = r.ok ? 'verified' : 'failed';
      el.dataset.rootMatches = String(r.rootMatches);
      el.dataset.certificateHolds = String(r.certificateHolds);
      label.textContent = r.ok ? `Proof verified in this browser` : `Proof FAILED`;
      const yes = (b: boolean) => h('span', { class: b ? 'yes' : 'no' }, b ? 'yes' : 'no');
      fill(
        detail,
        h('div', null, 'Matches the block’s root: ', yes(r.rootMatches)),
        h('div', null, 'Block certificate holds against the genesis validators: ', yes(r.certificateHolds)),
        h('div', null, `Block ${r.height} `, h('a', { href: `#/block/${r.height}`, class: 'mono', title: r.blockHash }, r.blockHash.slice(0, 18) + '…')),
        r.detail ? h('div', { class: 'muted' }, r.detail) : null,
      );
    },
    (e: unknown) => {
      el.dataset.proof = 'failed';
      label.textContent = 'Proof FAILED: it could not be checked';
      detail.replaceChildren(h('div', { class: 'muted' }, message(e)));
    },
  );
  return el;
}

export const txProofBadge = (hash: string) => badge('transaction', (c) => verifyTxProof(c, hash));
export const blockProofBadge = (height: bigint) => badge('block', (c) => verifyBlock(c, height));
export const accountProofBadge = (account: string) => badge('account', (c) => verifyAccountProof(c, account));
export const recordProofBadge = (owner: string, key: Uint8Array) => badge('record', (c) => verifyRecordProof(c, owner, key));
