// Runs `tally devnet` for the tests: one process with every node, on ports
// the OS picks, in a fresh temporary home. `stop()` ends it with SIGINT (and
// SIGKILL after a bound) and removes the home.
//
// With `governance`, the network is first made by `tally testnet`, its
// genesis given more admins and a higher approval threshold (the same file in
// the top folder and in every node's home), and then run by `tally devnet
// --home`, which restarts a folder that already holds a genesis.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** How long the devnet may take to say it is running. */
const START_TIMEOUT_MS = 90_000;
/** How long it may take to stop after SIGINT before it is killed. */
const STOP_TIMEOUT_MS = 20_000;
/** The stderr kept for error messages. */
const STDERR_KEPT_BYTES = 16 << 10;
/** How long `tally testnet` may take to write the network. */
const CREATE_TIMEOUT_MS = 60_000;
/**
 * The ports `tally testnet` writes into the node configs. It refuses 0, but
 * `tally devnet --base-port 0` listens on ports the OS picks and wires the
 * peers itself, so these are never bound (`tally devnet` writes the same).
 */
const TESTNET_BASE_PORT = 26656;

export interface Devnet {
  home: string;
  rpc: string[];
  replicaRpc: string[];
  /** The genesis admin made by `tally testnet` (always an admin). */
  adminPem: string;
  /** Every admin's key file: `adminPem` first, then the users made admins. */
  adminPems: string[];
  /** The funded member accounts (users made admins by `governance` are in `adminPems` instead). */
  userPems: string[];
  stop(): Promise<void>;
}

export interface DevnetOptions {
  validators?: number;
  replicas?: number;
  /**
   * `admins` admin accounts in all (the generated admin and the first
   * `admins - 1` users) and changes applied at `threshold` approvals. Above
   * 1, the threshold needs at least one admin beyond it (2 of 3).
   */
  governance?: { admins: number; threshold: number };
}

/** The `tally` binary: $TALLY_BIN, else $CARGO_TARGET_DIR/release/tally, else <repo>/target/release/tally. */
export function tallyBinary(): string {
  const repo = resolve(fileURLToPath(import.meta.url), '../../../../..');
  const candidates = [
    process.env['TALLY_BIN'],
    process.env['CARGO_TARGET_DIR'] && join(process.env['CARGO_TARGET_DIR'], 'release', 'tally'),
    join(repo, 'target', 'release', 'tally'),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `no tally binary (looked at ${candidates.join(', ')}): run \`cargo build --release\` at the repository root, or set TALLY_BIN`,
    );
  }
  return found;
}

const running = new Set<ChildProcess>();
// Never leave a devnet behind, even when a test run is cut short.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => child.once('exit', () => done()));
}

/** Runs `tally testnet` to completion; fails with its stderr. */
function runTestnet(bin: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(bin, ['testnet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEPT_BYTES);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CREATE_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      running.delete(child);
      fail(new Error(`cannot run ${bin}: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) done();
      else fail(new Error(`tally testnet ${args.join(' ')} failed (${signal ?? `code ${code}`}); stderr: ${stderr}`));
    });
  });
}

/** The node homes `tally testnet` made in `net`: node0…, replica0…. */
function nodeHomes(net: string): string[] {
  return readdirSync(net, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^(node|replica)\d+$/.test(e.name))
    .map((e) => join(net, e.name));
}

/** The users' key files in `accounts`, in numeric order. */
function userKeyFiles(accounts: string): string[] {
  return readdirSync(accounts)
    .filter((f) => /^user\d+\.pem$/.test(f))
    .sort((a, b) => Number(a.slice(4, -4)) - Number(b.slice(4, -4)))
    .map((f) => join(accounts, f));
}

/**
 * Creates the network in `net` with `tally testnet` and rewrites its genesis
 * (one text, written to the top folder and every node's home): the first
 * `admins - 1` users become admins and `threshold` approvals apply a change.
 */
async function createGoverned(bin: string, net: string, opts: DevnetOptions): Promise<void> {
  const { admins, threshold } = opts.governance!;
  if (!Number.isInteger(admins) || admins < 1 || !Number.isInteger(threshold) || threshold < 1 || threshold > admins) {
    throw new RangeError(`governance { admins: ${admins}, threshold: ${threshold} }: need 1 <= threshold <= admins`);
  }
  const args = ['--out', net, '--base-port', String(TESTNET_BASE_PORT), '--accounts', String(Math.max(4, admins - 1 + 2))];
  if (opts.validators !== undefined) args.push('--validators', String(opts.validators));
  if (opts.replicas !== undefined) args.push('--replicas', String(opts.replicas));
  await runTestnet(bin, args);

  // Every number in a generated genesis is below 2^53, so it survives JSON.parse.
  const genesis = JSON.parse(await readFile(join(net, 'genesis.json'), 'utf8'));
  // The generated accounts: the admin, then user0, user1, … in that order.
  const accounts = genesis.accounts as { public_key: string; role: string }[];
  if (accounts[0]?.role !== 'admin' || accounts.length < admins) {
    throw new Error(`the generated genesis has an unexpected account list: ${JSON.stringify(accounts)}`);
  }
  for (const account of accounts.slice(1, admins)) account.role = 'admin';
  genesis.governance = { ...(genesis.governance ?? {}), threshold };
  const text = JSON.stringify(genesis, null, 2) + '\n';
  const homes = nodeHomes(net);
  if (homes.length === 0) throw new Error(`tally testnet made no node homes in ${net}`);
  for (const dir of [net, ...homes]) await writeFile(join(dir, 'genesis.json'), text);
}

export async function startDevnet(opts: DevnetOptions = {}): Promise<Devnet> {
  const bin = tallyBinary();
  const home = await mkdtemp(join(tmpdir(), 'tally-ts-devnet-'));
  const net = join(home, 'net');
  const args = ['devnet', '--home', net, '--base-port', '0', '--log-level', 'warn'];
  if (opts.governance) {
    try {
      await createGoverned(bin, net, opts);
    } catch (e) {
      if (!process.env['TALLY_KEEP_DEVNET']) await rm(home, { recursive: true, force: true });
      throw e;
    }
  } else {
    // `tally devnet` creates the network itself (and ignores these when it restarts one).
    if (opts.validators !== undefined) args.push('--validators', String(opts.validators));
    if (opts.replicas !== undefined) args.push('--replicas', String(opts.replicas));
  }
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-STDERR_KEPT_BYTES);
  });

  const rpc: string[] = [];
  const replicaRpc: string[] = [];
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited(child);
      clearTimeout(timer);
    }
    if (!process.env['TALLY_KEEP_DEVNET']) await rm(home, { recursive: true, force: true });
  };

  try {
    await new Promise<void>((ready, fail) => {
      const timer = setTimeout(
        () => fail(new Error(`the devnet did not say "devnet running" within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`)),
        START_TIMEOUT_MS,
      );
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        // node0      up   rpc http://127.0.0.1:40467   p2p /ip4/…
        const m = /^(\S+)\s+up\s+rpc\s+(\S+)/.exec(line);
        if (m) (m[1]!.startsWith('replica') ? replicaRpc : rpc).push(m[2]!);
        if (line.startsWith('devnet running')) {
          clearTimeout(timer);
          ready();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`tally devnet exited (${signal ?? `code ${code}`}) before it was running; stderr: ${stderr}`));
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        fail(new Error(`cannot run ${bin}: ${e.message}`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const accounts = join(net, 'accounts');
  const users = userKeyFiles(accounts);
  if (rpc.length === 0) {
    await stop();
    throw new Error('the devnet is running but printed no validator RPC address');
  }
  const madeAdmins = opts.governance ? opts.governance.admins - 1 : 0;
  const adminPem = join(accounts, 'admin.pem');
  return {
    home: net, rpc, replicaRpc, adminPem,
    adminPems: [adminPem, ...users.slice(0, madeAdmins)],
    userPems: users.slice(madeAdmins),
    stop,
  };
}
