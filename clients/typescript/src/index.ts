/**
 * @tally/client: encoding and signing of every Tally transaction, the typed
 * ledger_* JSON-RPC API over HTTP and WebSocket, and verification of proofs
 * down to the genesis validator set. Runs in browsers and Node (≥ 20).
 */

export * from './bytes.js';
export * from './borsh.js';
export * from './types.js';
export * from './encoding.js';
export * from './keys.js';
export * from './hash.js';
export * from './state.js';
export * from './genesis.js';
export * from './verify.js';
export * from './api-types.js';
export * from './rpc.js';
export { Subscription, SUBSCRIPTION_BUFFER_MAX, type WebSocketLike, type WebSocketConstructor } from './ws.js';
export { parseJsonExact } from './json.js';
export * from './proof.js';
