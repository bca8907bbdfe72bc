// Runs `tally devnet` for the tests: one process with every node, on ports
// the OS picks, in a fresh temporary home. `stop()` ends it with SIGINT (and
// SIGKILL after a bound) and removes the home.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
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

export interface Devnet {
  home: string;
  rpc: string[];
  replicaRpc: string[];
  adminPem: string;
  userPems: string[];
  stop(): Promise<void>;
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

export async function startDevnet(opts: { validators?: number; replicas?: number } = {}): Promise<Devnet> {
  const bin = tallyBinary();
  const home = await mkdtemp(join(tmpdir(), 'tally-ts-devnet-'));
  const args = ['devnet', '--home', join(home, 'net'), '--base-port', '0', '--log-level', 'warn'];
  if (opts.validators !== undefined) args.push('--validators', String(opts.validators));
  if (opts.replicas !== undefined) args.push('--replicas', String(opts.replicas));
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
  const accounts = join(home, 'net', 'accounts');
  const userPems = readdirSync(accounts)
    .filter((f) => /^user\d+\.pem$/.test(f))
    .sort((a, b) => Number(a.slice(4, -4)) - Number(b.slice(4, -4)))
    .map((f) => join(accounts, f));
  if (rpc.length === 0) {
    await stop();
    throw new Error('the devnet is running but printed no validator RPC address');
  }
  return { home: join(home, 'net'), rpc, replicaRpc, adminPem: join(accounts, 'admin.pem'), userPems, stop };
}
