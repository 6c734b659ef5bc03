// Drives `toolshed serve` with the official MCP TypeScript SDK, over stdio
// and over streamable HTTP, and fails when the SDK refuses any answer.
//
// Usage: node ts_client.mjs TOOLSHED WORK_DIR PYTHON_DEV_V2_DIR
//
// WORK_DIR/stdio/data and WORK_DIR/http/data are data directories that
// already hold the templates python-dev (version 1), broken-build and
// slow-build (run.sh pushes them). Each transport gets its own, because the
// manual-update scenario pushes python-dev version 2 into it.
//
// Every call goes through `Client.callTool` at default settings, after
// `listTools`, which is what makes the SDK check each call's
// structuredContent against the tool's outputSchema. An exception from
// callTool is a failure. When one happens, the scenario is finished with the
// SDK's plain `request` (no output check) so that the later scenarios still
// find the state they expect, and the row says what the server answered.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

const SDK_VERSION = JSON.parse(
  fs.readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8'),
).version;

const TOOLS = ['list_templates', 'read_template', 'create_workspace', 'start_workspace', 'stop_workspace', 'provision_registry'];
// A template id that is a well-formed UUID but names no template.
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';
// How long one scenario may keep making the call a STILL_IN_PROGRESS answer names.
const FOLLOW_LIMIT_MS = 120_000;

const [toolshed, workDir, v2Dir] = process.argv.slice(2);
if (!toolshed || !workDir || !v2Dir) {
  console.error('usage: node ts_client.mjs TOOLSHED WORK_DIR PYTHON_DEV_V2_DIR');
  process.exit(2);
}

const rows = [];
const failures = [];
// Worth a look, but not a refusal by the SDK: printed after the table.
const notes = [];

// ---------------------------------------------------------------- answers

// The error code of an isError result: structuredContent.code, else the
// code in the JSON text content.
function errorCode(result) {
  const sc = result.structuredContent;
  if (sc && typeof sc === 'object' && typeof sc.code === 'string') return sc.code;
  for (const block of result.content ?? []) {
    if (block.type !== 'text') continue;
    try {
      const parsed = JSON.parse(block.text);
      if (parsed && typeof parsed.code === 'string') return parsed.code;
    } catch {
      // not JSON: try the next block
    }
  }
  return undefined;
}

// The answer's object: structuredContent, else the JSON text content.
function answerObject(result) {
  if (result.structuredContent && typeof result.structuredContent === 'object') return result.structuredContent;
  for (const block of result.content ?? []) {
    if (block.type !== 'text') continue;
    try {
      return JSON.parse(block.text);
    } catch {
      // not JSON: try the next block
    }
  }
  return {};
}

function classify(result) {
  if (result.isError) return { kind: 'error', code: errorCode(result) ?? '(no code)', value: answerObject(result) };
  return { kind: 'result', value: answerObject(result) };
}

function describe(answer) {
  if (answer.kind === 'result') return 'result';
  if (answer.kind === 'error') return answer.code;
  return `JSON-RPC error ${answer.code}`;
}

// `tool {"json": "arguments"}`, as suggestions[0] of STILL_IN_PROGRESS reads.
function parseCall(text) {
  const space = text.indexOf(' ');
  if (space < 0) return { tool: text, args: {} };
  return { tool: text.slice(0, space), args: JSON.parse(text.slice(space + 1)) };
}

function short(value, width = 70) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

// ---------------------------------------------------------------- a session

class Session {
  constructor(transportName, client) {
    this.transport = transportName;
    this.client = client;
    this.nonce = randomBytes(3).toString('hex');
  }

  chat(group) {
    return `ts-${this.transport}-${this.nonce}-${group}`;
  }

  // listTools until every tool is listed: plugins install in the background,
  // and a slow install is only announced later with list_changed.
  async listAllTools() {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const { tools } = await this.client.listTools();
      const names = tools.map((t) => t.name);
      const missing = TOOLS.filter((t) => !names.includes(t));
      if (missing.length === 0) return tools;
      if (Date.now() > deadline) throw new Error(`tools never listed: ${missing.join(', ')}`);
      await sleep(1000);
    }
  }

  params(tool, args, meta) {
    return { name: tool, arguments: args, _meta: meta };
  }

  // One call through the SDK's callTool: a result, an error object, or what
  // the SDK threw.
  async sdkCall(tool, args, meta) {
    try {
      return classify(await this.client.callTool(this.params(tool, args, meta)));
    } catch (e) {
      return { kind: 'threw', code: e?.code, message: e?.message ?? String(e) };
    }
  }

  // The same call without the SDK's output check.
  async rawCall(tool, args, meta) {
    try {
      return classify(await this.client.request({ method: 'tools/call', params: this.params(tool, args, meta) }, CallToolResultSchema));
    } catch (e) {
      return { kind: 'threw', code: e?.code, message: e?.message ?? String(e) };
    }
  }

  // Runs one scenario and records its row.
  //   expect: 'result', an error code, or a list of acceptable codes.
  //   follow: keep making the call that STILL_IN_PROGRESS names (default:
  //           unless STILL_IN_PROGRESS is what the scenario expects).
  //   meta:   the call's _meta (default: the group's chat).
  //   label:  the tool column, when it should say more than the tool name.
  async check(group, tool, args, expect, { follow, meta, label } = {}) {
    const expected = Array.isArray(expect) ? expect : [expect];
    follow ??= !expected.includes('STILL_IN_PROGRESS');
    meta ??= { chat_id: this.chat(group) };
    let call = { tool, args };
    let refused = null;
    let follows = 0;
    const builds = new Set();
    let answer;
    const deadline = Date.now() + FOLLOW_LIMIT_MS;
    for (;;) {
      answer = refused ? await this.rawCall(call.tool, call.args, meta) : await this.sdkCall(call.tool, call.args, meta);
      if (answer.kind === 'threw' && !refused) {
        refused = { call, message: answer.message };
        answer = await this.rawCall(call.tool, call.args, meta);
      }
      if (answer.value?.build_id) builds.add(answer.value.build_id);
      const again = answer.kind === 'error' && answer.code === 'STILL_IN_PROGRESS' && answer.value.suggestions?.[0];
      if (follow && again && Date.now() < deadline) {
        call = parseCall(answer.value.suggestions[0]);
        follows += 1;
        await sleep(300);
        continue;
      }
      break;
    }
    // Making the call STILL_IN_PROGRESS names should wait on the same build;
    // a build id that changes means each call started a new one.
    const after = follows ? ` (after ${follows} STILL_IN_PROGRESS${builds.size > 1 ? `, ${builds.size} build_ids` : ''})` : '';
    if (builds.size > 1) {
      notes.push(`[ts/${this.transport}] ${tool} ${JSON.stringify(args)}: the answers named ${builds.size} different build_ids`);
    }
    let outcome;
    if (refused) {
      outcome = `FAIL: SDK threw: ${short(refused.message, 90)} [server answered ${describe(answer)}]`;
      failures.push(
        `[ts/${this.transport}] ${refused.call.tool} ${JSON.stringify(refused.call.args)} (_meta ${JSON.stringify(meta)}): ${refused.message}`,
      );
    } else if (answer.kind === 'threw') {
      outcome = `FAIL: ${short(answer.message, 90)}`;
      failures.push(`[ts/${this.transport}] ${call.tool} ${JSON.stringify(call.args)}: ${answer.message}`);
    } else if (expected.includes(describe(answer))) {
      outcome = `ok: ${describe(answer)}${after}`;
    } else {
      const message = answer.kind === 'error' ? `: ${short(answer.value.error ?? '', 100)}` : '';
      outcome = `FAIL: expected ${expected.join(' or ')}, got ${describe(answer)}${message}`;
      failures.push(`[ts/${this.transport}] ${tool} ${JSON.stringify(args)}: ${outcome.slice(6)}`);
    }
    rows.push([this.transport, label ?? tool, short(args, 60), expected.join(' | '), outcome]);
    return answer;
  }

  // Best effort, outside the table: stop the group's workspace, following
  // STILL_IN_PROGRESS, so no agent process is left behind.
  async stopQuietly(group) {
    const meta = { chat_id: this.chat(group) };
    const deadline = Date.now() + FOLLOW_LIMIT_MS;
    for (;;) {
      const answer = await this.rawCall('stop_workspace', {}, meta);
      if (answer.kind === 'error' && answer.code === 'STILL_IN_PROGRESS' && Date.now() < deadline) {
        await sleep(300);
        continue;
      }
      return answer;
    }
  }
}

// Six seconds: past one build poll (2 s) and the answer's margin (3 s), so
// a build that fails fast is answered in one call, and short enough that a
// build waiting for its release answers STILL_IN_PROGRESS within seconds.
const WAIT_BUDGET = '6';

// ---------------------------------------------------------------- scenarios

// The slow-build workspace's name; its build ends once a file named
// `release` appears in its directory (data/workspaces/OWNER/NAME).
const SLOW_WORKSPACE = 'slow-box';

function releaseSlowBuild(dataDir) {
  const root = path.join(dataDir, 'workspaces');
  if (!fs.existsSync(root)) return;
  for (const owner of fs.readdirSync(root)) {
    const dir = path.join(root, owner, SLOW_WORKSPACE);
    if (fs.existsSync(dir)) fs.writeFileSync(path.join(dir, 'release'), 'released\n');
  }
}

async function scenarios(session, { dataDir }) {
  const release = () => releaseSlowBuild(dataDir);
  const s = session;
  const created = [];
  try {
    // Templates.
    const listed = await s.check('templates', 'list_templates', {}, 'result');
    const ids = Object.fromEntries((listed.value?.templates ?? []).map((t) => [t.name, t.id]));
    for (const name of ['python-dev', 'broken-build', 'slow-build']) {
      if (!ids[name]) throw new Error(`list_templates did not list ${name}: ${JSON.stringify(listed.value)}`);
    }
    await s.check('templates', 'list_templates', { bogus: 1 }, 'INVALID_ARGUMENTS');
    await s.check('templates', 'read_template', {}, 'INVALID_ARGUMENTS');
    await s.check('templates', 'read_template', { template_id: '' }, 'TEMPLATE_ID_REQUIRED');
    await s.check('templates', 'read_template', { template_id: 'nope' }, 'INVALID_TEMPLATE_ID');
    await s.check('templates', 'read_template', { template_id: UNKNOWN_UUID }, 'TEMPLATE_NOT_FOUND');
    await s.check('templates', 'read_template', { template_id: ids['python-dev'] }, 'result');

    // create_workspace refusals, before any workspace exists.
    await s.check('create', 'create_workspace', {}, 'INVALID_ARGUMENTS');
    await s.check('create', 'create_workspace', { template_id: '' }, 'TEMPLATE_ID_REQUIRED');
    await s.check('create', 'create_workspace', { template_id: 'nope' }, 'INVALID_TEMPLATE_ID');
    await s.check('create', 'create_workspace', { template_id: UNKNOWN_UUID }, ['TEMPLATE_NOT_FOUND', 'TEMPLATE_NOT_AVAILABLE']);

    // A chat without a workspace.
    await s.check('empty', 'start_workspace', {}, 'NO_WORKSPACE');
    await s.check('empty', 'stop_workspace', {}, 'NO_WORKSPACE');
    await s.check('empty', 'start_workspace', { parameters: 'eu' }, 'INVALID_ARGUMENTS');

    // A build that fails.
    created.push('broken');
    await s.check('broken', 'create_workspace', { template_id: ids['broken-build'] }, 'BUILD_FAILED');

    // A build that outlasts the wait budget, then ends once released.
    created.push('slow');
    const slowArgs = { template_id: ids['slow-build'], name: SLOW_WORKSPACE };
    const still = await s.check('slow', 'create_workspace', slowArgs, 'STILL_IN_PROGRESS');
    release();
    const suggested = still.kind === 'error' && still.value.suggestions?.[0];
    if (suggested) {
      const again = parseCall(suggested);
      await s.check('slow', again.tool, again.args, 'result', { label: `${again.tool} (suggestions[0])` });
    } else {
      rows.push([s.transport, 'create_workspace (suggestions[0])', '', 'result', 'FAIL: no suggestions[0] to call']);
      failures.push(`[ts/${s.transport}] create_workspace: the STILL_IN_PROGRESS answer had no suggestions[0]`);
    }
    await s.check('slow', 'stop_workspace', {}, 'result');

    // The manual update of SPEC 3.6: the template gains a required parameter
    // while the workspace is stopped.
    created.push('update');
    await s.check('update', 'create_workspace', { template_id: ids['python-dev'], name: 'interop-box' }, 'result');
    await s.check('update', 'stop_workspace', {}, 'result');
    await pushTemplate(dataDir, v2Dir);
    await s.check('update', 'start_workspace', {}, 'TEMPLATE_PARAMETERS_REQUIRED');
    await s.check('update', 'start_workspace', { parameters: { region: 'eu' } }, 'result');
    await s.check('update', 'stop_workspace', {}, 'result');

    // provision_registry.
    const registry = { project_id: 'p1', cluster_id: 'c1', cluster_name: 'main cluster', provider: 'hetzner', region: 'fsn1' };
    await s.check('registry', 'provision_registry', {}, 'INVALID_ARGUMENTS');
    await s.check('registry', 'provision_registry', { ...registry, project_id: '' }, 'PROJECT_ID_REQUIRED');
    await s.check('registry', 'provision_registry', { ...registry, cluster_id: '' }, 'CLUSTER_ID_REQUIRED');
    await s.check('registry', 'provision_registry', { ...registry, provider: 'aws' }, 'UNKNOWN_PROVIDER');
    await s.check('registry', 'provision_registry', { ...registry, provider: 'gcp' }, 'GCP_PROJECT_ID_REQUIRED');
    await s.check('registry', 'provision_registry', { ...registry, registry_name: 'Interop Registry' }, 'result');

    // What the server refuses before any tool runs.
    await s.check('meta', 'list_templates', {}, 'INVALID_CHAT_ID', { meta: { chat_id: 'bad id!' }, label: 'list_templates (_meta.chat_id "bad id!")' });
    await unknownTool(s);
  } catch (e) {
    rows.push([s.transport, '(scenarios)', '', '', `FAIL: ${e?.message ?? e}`]);
    failures.push(`[ts/${s.transport}] scenarios stopped: ${e?.stack ?? e}`);
  } finally {
    // Let a build still waiting for its release end, then stop every
    // workspace the scenarios created.
    release();
    for (const group of created) {
      const answer = await session.stopQuietly(group);
      if (answer.kind === 'threw') console.error(`[ts/${s.transport}] cleanup stop_workspace (${group}): ${answer.message}`);
    }
  }
}

// An unknown tool: an isError result with UNKNOWN_TOOL, or a JSON-RPC error
// (the SDK throws McpError). Either is accepted; the row says which. No
// output validator exists for a tool that was never listed, so what the
// SDK throws here is the server's error, not the SDK's check.
async function unknownTool(s) {
  const meta = { chat_id: s.chat('meta') };
  const answer = await s.sdkCall('no_such_tool', {}, meta);
  let outcome;
  if (answer.kind === 'error' && answer.code === 'UNKNOWN_TOOL') {
    outcome = 'ok: UNKNOWN_TOOL (isError result)';
  } else if (answer.kind === 'threw' && typeof answer.code === 'number') {
    outcome = `ok: JSON-RPC error ${answer.code}: ${short(answer.message, 80)}`;
  } else {
    outcome = `FAIL: got ${answer.kind === 'threw' ? answer.message : describe(answer)}`;
    failures.push(`[ts/${s.transport}] no_such_tool {}: ${outcome.slice(6)}`);
  }
  rows.push([s.transport, 'no_such_tool', '{}', 'UNKNOWN_TOOL | JSON-RPC error', outcome]);
}

// ---------------------------------------------------------------- servers

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${output}`))));
  });
}

function pushTemplate(dataDir, dir) {
  return run(toolshed, ['--data-dir', dataDir, 'template', 'push', dir]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Until the server answers HTTP at all (any status will do).
async function waitForHttp(url, child, log) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`toolshed serve exited ${child.exitCode}; see ${log}`);
    try {
      await fetch(url, { method: 'GET', signal: AbortSignal.timeout(2000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`toolshed serve did not answer at ${url}; see ${log}`);
      await sleep(200);
    }
  }
}

// Records what the initialize response says, which the Client does not keep
// in full (the negotiated protocol version). The Client sets onmessage
// before it calls start, so wrapping start sees every message.
function observeInitialize(transport, seen) {
  const start = transport.start.bind(transport);
  transport.start = async () => {
    const inner = transport.onmessage;
    transport.onmessage = (message, extra) => {
      if (message?.result?.protocolVersion && !seen.protocolVersion) seen.protocolVersion = message.result.protocolVersion;
      inner?.(message, extra);
    };
    return start();
  };
}

// A Client at default settings; errors its transport reports outside any
// request (an event it could not read, say) become notes.
function newClient(transportName) {
  const client = new Client({ name: 'toolshed-interop-ts', version: '1.0.0' });
  client.onerror = (e) => notes.push(`[ts/${transportName}] transport error: ${e?.message ?? e}`);
  return client;
}

async function withStdio(dir, body) {
  const dataDir = path.join(dir, 'data');
  const log = fs.openSync(path.join(dir, 'serve.log'), 'a');
  const transport = new StdioClientTransport({
    command: toolshed,
    args: ['--data-dir', dataDir, 'serve', '--wait-budget', WAIT_BUDGET],
    stderr: log,
  });
  const seen = {};
  observeInitialize(transport, seen);
  const client = newClient('stdio');
  await client.connect(transport);
  try {
    await body(client, seen);
  } finally {
    client.onerror = undefined; // closing aborts the streams on purpose
    await client.close();
    fs.closeSync(log);
  }
}

async function withHttp(dir, body) {
  const dataDir = path.join(dir, 'data');
  const logPath = path.join(dir, 'serve.log');
  const log = fs.openSync(logPath, 'a');
  const port = await freePort();
  const child = spawn(toolshed, ['--data-dir', dataDir, 'serve', '--http', `127.0.0.1:${port}`, '--wait-budget', WAIT_BUDGET], {
    stdio: ['ignore', log, log],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    const url = new URL(`http://127.0.0.1:${port}/mcp`);
    await waitForHttp(url, child, logPath);
    const transport = new StreamableHTTPClientTransport(url);
    const seen = {};
    observeInitialize(transport, seen);
    const client = newClient('http');
    await client.connect(transport);
    try {
      seen.sessionId = transport.sessionId;
      await body(client, seen);
    } finally {
      client.onerror = undefined; // closing aborts the streams on purpose
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.closeSync(log);
  }
}

async function runTransport(name, connect) {
  const dir = path.join(workDir, name);
  const dataDir = path.join(dir, 'data');
  try {
    await connect(dir, async (client, seen) => {
      const info = client.getServerVersion();
      console.log(
        `[ts/${name}] server ${info?.name} ${info?.version}, protocol ${seen.protocolVersion}` +
          (seen.sessionId ? `, session ${seen.sessionId}` : ''),
      );
      const session = new Session(name, client);
      await session.listAllTools();
      await scenarios(session, { dataDir });
    });
  } catch (e) {
    rows.push([name, '(connection)', '', '', `FAIL: ${e?.message ?? e}`]);
    failures.push(`[ts/${name}] ${e?.stack ?? e}`);
  }
}

// ---------------------------------------------------------------- main

function printTable(header, body) {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}

console.log(`TypeScript SDK @modelcontextprotocol/sdk ${SDK_VERSION}, node ${process.version}`);
await runTransport('stdio', withStdio);
await runTransport('http', withHttp);
console.log();
printTable(['transport', 'tool', 'arguments', 'expected', 'outcome'], rows);
console.log();
for (const n of notes) console.log(`note: ${n}`);
if (notes.length) console.log();
if (failures.length) {
  console.log(`TypeScript SDK: ${failures.length} failure(s):`);
  for (const f of failures) console.log(`  ${f}`);
  process.exit(1);
}
console.log(`TypeScript SDK: all ${rows.length} scenarios passed`);
