// Display of what the node sends encoded: signed transactions (decoded by
// the client library) as labelled fields, and libp2p PeerIds of node keys.

import { decodeSignedTx, fromHex, toHex, type Change } from '../../src/index.js';

export function hexToBytes(hex: string): Uint8Array {
  return fromHex(hex);
}

export function bytesToHex(b: Uint8Array): string {
  return toHex(b);
}

/** The bytes as text when they are printable UTF-8, else null. */
export function printable(b: Uint8Array): string | null {
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(b);
    return /^[\P{Cc}\n\t]*$/u.test(s) ? s : null;
  } catch {
    return null;
  }
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let s = '';
  while (n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    s = '1' + s;
  }
  return s;
}

/**
 * The identity multihash (code 0x00, 36 bytes) of the protobuf-encoded
 * ed25519 public key (KeyType = 1, 32-byte data), as
 * `ledger::genesis::peer_id_from_node_key` writes it before base58.
 */
const ED25519_PEER_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/** The libp2p PeerId (base58) of a node whose identity key is `nodeKey`. */
export function peerIdFromNodeKey(nodeKey: Uint8Array): string {
  if (nodeKey.length !== 32) throw new Error(`a node key is 32 bytes, found ${nodeKey.length}`);
  const bytes = new Uint8Array(ED25519_PEER_ID_PREFIX.length + 32);
  bytes.set(ED25519_PEER_ID_PREFIX, 0);
  bytes.set(nodeKey, ED25519_PEER_ID_PREFIX.length);
  return base58(bytes);
}

/** A decoded field: a label and its value, with the kind of link it makes. */
export interface Field {
  label: string;
  value: string;
  link?: 'account' | 'tx';
  /** A record name `owner/key` to link to. */
  record?: string;
}

export interface DecodedTx {
  chainId: string;
  sender: string;
  nonce: bigint;
  op: string;
  fields: Field[];
  signature: string;
}

function key(label: string, b: Uint8Array, link?: 'account' | 'tx'): Field {
  return link ? { label, value: bytesToHex(b), link } : { label, value: bytesToHex(b) };
}

function nodeKeyFields(nodeKey: Uint8Array): Field[] {
  return [
    { label: 'node key', value: bytesToHex(nodeKey) },
    { label: 'peer id', value: peerIdFromNodeKey(nodeKey) },
  ];
}

function changeFields(c: Change): { name: string; fields: Field[] } {
  switch (c.kind) {
    case 'grant':
      return { name: 'grant', fields: [key('account', c.account, 'account'), { label: 'role', value: c.role }] };
    case 'revoke':
      return { name: 'revoke', fields: [key('account', c.account, 'account')] };
    case 'add_validator':
      return {
        name: 'add validator',
        fields: [{ label: 'name', value: c.name }, key('consensus key', c.publicKey), ...nodeKeyFields(c.nodeKey), { label: 'power', value: c.power.toString() }],
      };
    case 'remove_validator':
      return { name: 'remove validator', fields: [key('consensus key', c.publicKey)] };
    case 'set_power':
      return { name: 'set validator power', fields: [key('consensus key', c.publicKey), { label: 'power', value: c.power.toString() }] };
    case 'rotate_key':
      return { name: 'rotate validator key', fields: [key('consensus key', c.publicKey), key('new key', c.newKey), key('consent', c.consent)] };
    case 'add_replica':
      return { name: 'add replica', fields: [{ label: 'name', value: c.name }, ...nodeKeyFields(c.nodeKey)] };
    case 'remove_replica':
      return { name: 'remove replica', fields: nodeKeyFields(c.nodeKey) };
  }
}

function text(label: string, b: Uint8Array): Field {
  const t = printable(b);
  return { label, value: t !== null ? `${JSON.stringify(t)} (${bytesToHex(b)})` : bytesToHex(b) };
}

/** A signed transaction (decoded by the client library) as labelled fields. */
export function describeTx(bytes: Uint8Array): DecodedTx {
  const { tx, signature } = decodeSignedTx(bytes);
  const sender = bytesToHex(tx.sender);
  const op = tx.op;
  let name: string = op.kind;
  let fields: Field[];
  switch (op.kind) {
    case 'transfer':
      fields = [key('to', op.to, 'account'), { label: 'amount', value: op.amount.toString() }];
      break;
    case 'put':
      fields = [{ ...text('key', op.key), record: `${sender}/${bytesToHex(op.key)}` }, text('value', op.value)];
      break;
    case 'delete':
      fields = [{ ...text('key', op.key), record: `${sender}/${bytesToHex(op.key)}` }];
      break;
    case 'grant':
      fields = [key('account', op.account, 'account'), { label: 'role', value: op.role }];
      break;
    case 'revoke':
      fields = [key('account', op.account, 'account')];
      break;
    case 'propose': {
      const c = changeFields(op.change);
      name = `propose: ${c.name}`;
      fields = c.fields;
      break;
    }
    case 'approve':
      fields = [key('change', op.change, 'tx')];
      break;
  }
  return { chainId: tx.chainId, sender, nonce: tx.nonce, op: name, fields, signature: bytesToHex(signature) };
}
