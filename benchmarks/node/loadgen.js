#!/usr/bin/env node
// Streamzy load generator: many Socket.IO clients in one Node process.
//
// It speaks Engine.IO v4 / Socket.IO v5 text frames over `ws` directly (websocket
// transport only, no polling, no permessage-deflate unless asked), which costs a few
// microseconds per received message: the generator must never be what is measured.
//
//   node loadgen.js CONFIG.json      -> one JSON result object on stdout, progress on stderr
//
// Modes (config.mode):
//   chat     connect + join, then S senders send R msg/s (open loop) for T s; measures
//            send-to-receive latency of every delivery, loss, duplicates, acks, errors.
//   idle     connect + join, hold, report connected sockets and server RSS.
//   history  connect + join, then time `history` pages (ack latency).
//   join     connect + join only: the join storm itself is the measurement.
// Every mode reports per-client join latency (connect start to the last join ack, `join_ms`)
// and the server's CPU seconds while connecting and joining (`connect_server_cpu_s`) and
// while settling after (`settle_server_cpu_s`). Optional config: handshakeTimeoutMs
// (default 15000), connectTimeoutMs (websocket start to Socket.IO connect ack; default none),
// joinTimeoutMs (default 30000), settleQuiet (after `settle`, wait up to this many more
// seconds until the server's tree uses < quietCores (default 0.05) of a core for 1 s).
// Optional config.logins runs a login storm (real HTTP logins) during the chat window.
//
// Only loopback targets are accepted, and a hard deadline always ends the process.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');
const { monitorEventLoopDelay } = require('perf_hooks');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const url = new URL(cfg.url);
if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
  console.error('refusing a non-loopback target: ' + cfg.url);
  process.exit(2);
}
const wsUrl = (u) => `ws://${u.host}/socket.io/?EIO=4&transport=websocket`;
const WS_URL = wsUrl(url);
const CLK_TCK = 100;
const PAGE = 4096;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
// Frames of other events (presence, typing) are dropped before decoding: in a room of
// thousands they can be large and many, and only `message` is ever looked at.
const MESSAGE_PREFIX = Buffer.from('42["message"');
const EVENT_PREFIX = Buffer.from('42[');
const log = (...a) => process.stderr.write(`[loadgen ${(nowMs() - T_START).toFixed(0)}ms] ${a.join(' ')}\n`);
const T_START = nowMs();

// ---- hard deadline: whatever happens, the generator stops by itself -----------------
const deadlineS = cfg.deadline || 300;
const hardStop = setTimeout(() => {
  log(`hard deadline of ${deadlineS}s reached: aborting`);
  finish({ aborted: 'deadline' }, 3);
}, deadlineS * 1000);

// ---- server process tree CPU and RSS from /proc --------------------------------------
function treePids(root) {
  const out = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    out.push(pid);
    let tasks = [];
    try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tasks) {
      try {
        const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(/\s+/)) stack.push(Number(k));
      } catch { /* gone */ }
    }
  }
  return out;
}
function procSample(pids) {
  let cpu = 0, rss = 0;
  for (const root of pids || []) {
    for (const pid of treePids(root)) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        cpu += (Number(f[11]) + Number(f[12])) / CLK_TCK;  // utime + stime
        rss += Number(f[21]) * PAGE;
      } catch { /* exited */ }
    }
  }
  return { cpu, rss };
}

// ---- one Socket.IO client ----------------------------------------------------------------
const counters = { connectErrors: 0, joinErrors: 0, disconnects: 0, ackErrors: 0,
  ackTimeouts: 0, sendErrors: 0, unexpected: 0, errorCodes: {} };
const clients = [];

class Client {
  constructor(index, spec) {
    this.index = index;
    this.spec = spec;
    this.ws = null;
    this.connected = false;
    this.nextAck = 1;
    this.acks = new Map();   // ack id -> callback(payload)
    this.memberIndex = new Map();  // room -> index inside that room's member list
    this.closing = false;
  }

  connect() {
    return new Promise((resolve) => {
      const headers = {};
      if (this.spec.cookie) headers.Cookie = `${cfg.cookieName || 'streamzy_session'}=${this.spec.cookie}`;
      let target = WS_URL;
      if (this.spec.url) {
        const u = new URL(this.spec.url);
        if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error('non-loopback client url');
        target = wsUrl(u);
      }
      const ws = new WebSocket(target, { headers, perMessageDeflate: !!cfg.deflate,
        handshakeTimeout: cfg.handshakeTimeoutMs || 15000 });
      this.ws = ws;
      let settled = false;
      let timer = null;
      const done = (ok, why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok) { counters.connectErrors++; if (why) bump(why); }
        resolve(ok);
      };
      // A server that upgraded but never answers the Socket.IO connect: an error, not a hang.
      if (cfg.connectTimeoutMs) {
        timer = setTimeout(() => { done(false, 'connect_timeout'); ws.terminate(); },
          cfg.connectTimeoutMs);
      }
      ws.on('message', (buf, isBinary) => {
        if (!isBinary && buf.length > MESSAGE_PREFIX.length
            && buf.compare(EVENT_PREFIX, 0, 3, 0, 3) === 0
            && buf.compare(MESSAGE_PREFIX, 0, MESSAGE_PREFIX.length, 0, MESSAGE_PREFIX.length) !== 0) {
          return;  // 42["presence",...] and the like: onEvent would skip them anyway
        }
        const s = isBinary ? buf.toString() : buf.toString();
        this.onFrame(s, done);
      });
      ws.on('error', (err) => { done(false, 'ws:' + (err.code || err.message)); });
      ws.on('close', () => {
        if (this.connected && !this.closing) counters.disconnects++;
        this.connected = false;
        done(false, 'closed_before_connect');
      });
    });
  }

  onFrame(s, connectDone) {
    const c0 = s.charCodeAt(0);
    if (c0 === 52 /* '4' engine.io message */) {
      const c1 = s.charCodeAt(1);
      if (c1 === 50 /* '2' event */) { onEvent(this, s); return; }
      if (c1 === 51 /* '3' ack */) {
        const b = s.indexOf('[');
        const id = Number(s.slice(2, b));
        const cb = this.acks.get(id);
        if (cb) { this.acks.delete(id); cb(s.slice(b)); }
        return;
      }
      if (c1 === 48 /* '0' connect ok */) { this.connected = true; connectDone(true); return; }
      if (c1 === 52 /* '4' connect error */) {
        let code = 'connect_error';
        try { const d = JSON.parse(s.slice(2)); code = 'refused:' + ((d.data && d.data.code) || d.message); } catch {}
        connectDone(false, code);
        this.ws.terminate();
        return;
      }
      if (c1 === 49 /* '1' disconnect */) { this.connected = false; return; }
      counters.unexpected++;
      return;
    }
    if (c0 === 50 /* '2' ping */) { this.ws.send('3'); return; }
    if (c0 === 48 /* '0' open */) {
      const auth = this.spec.token ? JSON.stringify({ token: this.spec.token }) : '';
      this.ws.send('40' + auth);
      return;
    }
    if (c0 === 49 /* '1' close */) return;
    counters.unexpected++;
  }

  emit(event, data, cb) {
    const id = this.nextAck++;
    if (cb) this.acks.set(id, cb);
    this.ws.send(`42${id}` + JSON.stringify([event, data]));
    return id;
  }

  call(event, data, timeoutMs = 30000) {
    return new Promise((resolve) => {
      let timer = null;
      const id = this.emit(event, data, (raw) => {
        clearTimeout(timer);
        let v = null;
        try { v = JSON.parse(raw)[0]; } catch {}
        resolve(v);
      });
      timer = setTimeout(() => { this.acks.delete(id); resolve({ ok: false, code: 'timeout' }); }, timeoutMs);
    });
  }

  close() {
    this.closing = true;
    try { this.ws.terminate(); } catch {}
  }
}

function bump(code) { counters.errorCodes[code] = (counters.errorCodes[code] || 0) + 1; }

// ---- deliveries ------------------------------------------------------------------------
const roomMembers = new Map();  // room -> [client index]
let sent = new Map();   // client_msg_id -> record (this phase)
let measureStart = Infinity, measureEnd = Infinity;
let latencies = [];  // ms, deliveries of measured messages
let ackLatencies = [];
let deliveredInWindow = 0, deliveredTotal = 0, duplicates = 0, strays = 0, outstanding = 0;
let lastDeliveryAt = 0;
let phaseNo = 0;
// A flooder (phase.flood = {client, rate}): one client sending far past its limit, with
// ids outside the tracked set; what the server does with it is reported on its own.
const FLOOD_PREFIX = 'F';
let flood = null;
function resetPhase() {
  sent = new Map(); latencies = []; ackLatencies = [];
  deliveredInWindow = 0; deliveredTotal = 0; duplicates = 0; strays = 0; outstanding = 0;
  measureStart = Infinity; measureEnd = Infinity;
  for (const k of ['ackErrors', 'ackTimeouts', 'sendErrors', 'unexpected']) counters[k] = 0;
  counters.errorCodes = {};
  loginStats.ok = 0; loginStats.failed = 0; loginStats.latencies = [];
  flood = null;
  phaseNo++;
}
const CMID_KEY = '"client_msg_id"';

function onEvent(client, s) {
  // 42["message",{...}] is the hot path; everything else (presence, typing) is skipped.
  if (!s.startsWith('42["message"') || client.spec.untracked) return;
  const t = nowMs();
  const k = s.indexOf(CMID_KEY);
  if (k < 0) { strays++; return; }
  const q1 = s.indexOf('"', k + CMID_KEY.length);
  const q2 = s.indexOf('"', q1 + 1);
  if (flood && s.startsWith(FLOOD_PREFIX, q1 + 1)) { flood.delivered++; return; }
  const rec = sent.get(s.slice(q1 + 1, q2));
  if (rec === undefined) { strays++; return; }
  const mi = client.memberIndex.get(rec.room);
  if (mi === undefined) { strays++; return; }
  const n = rec.got[mi]++;
  if (n > 0) { duplicates++; return; }
  if (rec.expected) outstanding--;
  deliveredTotal++;
  lastDeliveryAt = t;
  if (t >= measureStart && t <= measureEnd) deliveredInWindow++;
  if (rec.measured) latencies.push(t - rec.at);
}

// ---- helpers ------------------------------------------------------------------------------
async function pool(items, concurrency, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (i < items.length) { const k = i++; await fn(items[k], k); }
  });
  await Promise.all(workers);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function pct(sorted, p) {
  if (!sorted.length) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}
function summary(arr) {
  const a = Float64Array.from(arr).sort();
  return { n: a.length, p50: pct(a, 50), p95: pct(a, 95), p99: pct(a, 99),
    max: a.length ? a[a.length - 1] : null };
}

async function connectAll() {
  const specs = cfg.clients;
  for (let i = 0; i < specs.length; i++) clients.push(new Client(i, specs[i]));
  const joinLatencies = [];  // ms, connect start to the last join ack, clients that joined all
  const srvA = procSample(cfg.serverPids);
  const t0 = nowMs();
  await pool(clients, cfg.connectConcurrency || 50, async (c) => {
    const start = nowMs();
    const ok = await c.connect();
    if (!ok) return;
    let joinedAll = true;
    for (const room of c.spec.rooms || []) {
      const ack = await c.call('join', { room }, cfg.joinTimeoutMs || 30000);
      if (!(ack && ack.ok)) joinedAll = false;
      if (ack && ack.ok) {
        if (c.spec.untracked) continue;  // in the room, but its receipts are not counted
        const members = roomMembers.get(room) || [];
        c.memberIndex.set(room, members.length);
        members.push(c.index);
        roomMembers.set(room, members);
      } else {
        counters.joinErrors++;
        bump('join:' + ((ack && ack.code) || 'no_ack'));
      }
    }
    if (joinedAll && (c.spec.rooms || []).length) joinLatencies.push(nowMs() - start);
  });
  const seconds = (nowMs() - t0) / 1000;
  const srvB = procSample(cfg.serverPids);
  const connected = clients.filter((c) => c.connected).length;
  log(`connected ${connected}/${clients.length} in ${seconds.toFixed(1)}s`);
  return { connected, connectSeconds: seconds, join_ms: summary(joinLatencies),
    connect_server_cpu_s: srvB.cpu - srvA.cpu };
}

// After the joins: `settle` seconds, then (config.settleQuiet) up to that many more until the
// server's tree is quiet, so that what the joins set off (presence) is over before measuring.
async function settleAfterJoins() {
  const settle = cfg.settle === undefined ? 0.5 : cfg.settle;
  const srvA = procSample(cfg.serverPids);
  const t0 = nowMs();
  await sleep(settle * 1000);  // presence bursts from the joins fade out first
  const quietUntil = nowMs() + (cfg.settleQuiet || 0) * 1000;
  let quiet = !cfg.settleQuiet;
  while (!quiet && nowMs() < quietUntil) {
    const a = procSample(cfg.serverPids).cpu;
    const ta = nowMs();
    await sleep(1000);
    quiet = (procSample(cfg.serverPids).cpu - a) / ((nowMs() - ta) / 1000) < (cfg.quietCores || 0.05);
  }
  return { settle_s: (nowMs() - t0) / 1000, settle_server_cpu_s: procSample(cfg.serverPids).cpu - srvA.cpu,
    settled_quiet: quiet };
}

// ---- login storm ----------------------------------------------------------------------
const loginStats = { ok: 0, failed: 0, latencies: [] };
async function loginWorker(user, stopAt) {
  const base = cfg.url.replace(/\/$/, '');
  while (nowMs() < stopAt) {
    const t0 = nowMs();
    try {
      const page = await fetch(base + '/login', { redirect: 'manual' });
      const html = await page.text();
      const anon = (page.headers.getSetCookie() || []).map((c) => c.split(';')[0]).join('; ');
      const m = /<meta name="csrf-token" content="([^"]+)">/.exec(html);
      const body = new URLSearchParams({ username: user.username, password: user.password,
        csrf_token: m ? m[1] : '' });
      const res = await fetch(base + '/login', { method: 'POST', body, redirect: 'manual',
        headers: { Cookie: anon, Origin: base, 'Content-Type': 'application/x-www-form-urlencoded' } });
      await res.arrayBuffer();
      if (res.status === 302) { loginStats.ok++; loginStats.latencies.push(nowMs() - t0); }
      else { loginStats.failed++; bump('login:' + res.status); }
    } catch (err) {
      loginStats.failed++; bump('login:' + (err.code || err.message));
      await sleep(100);
    }
  }
}

// ---- modes --------------------------------------------------------------------------------
// CPU time per core from /proc/stat: is anything else running on the cores we use?
function cpuStat() {
  const out = {};
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal
    out[m[1]] = { busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7] || 0 };
  }
  return out;
}
function cpuDelta(a, b) {
  const out = {};
  for (const k of Object.keys(b)) {
    if (!a[k]) continue;
    const busy = b[k].busy - a[k].busy, idle = b[k].idle - a[k].idle, steal = b[k].steal - a[k].steal;
    const total = busy + idle + steal || 1;
    out[k] = { busy: busy / total, steal: steal / total };
  }
  return out;
}

const RUN_ID = Math.floor(Math.random() * 36 ** 6).toString(36);
let seq = 0;

async function runChat(result, ph) {
  resetPhase();
  const rate = ph.rate;
  const warmup = ph.warmup || 0;
  const duration = ph.duration;
  const senders = (ph.senders || cfg.senders || []).map((i) => clients[i]).filter((c) => c && c.connected);
  if (!senders.length) throw new Error('no connected senders');
  const text = 'x'.repeat(cfg.textBytes || 200);
  const senderRooms = senders.map((c) => (c.spec.rooms || [])[0]);
  let nSent = 0, sentInWindow = 0;
  const ackTimeoutMs = cfg.ackTimeoutMs || 10000;
  const disconnectsBefore = counters.disconnects;
  const t0 = nowMs();
  measureStart = t0 + warmup * 1000;
  measureEnd = measureStart + duration * 1000;
  const stopAt = measureEnd;
  let cpuA = null, lgA = null, srvA = null, statA = null;
  const elDelay = monitorEventLoopDelay({ resolution: 5 });
  let storm = null;
  const logins = ph.logins || [];
  if (logins.length) {
    storm = new Promise((r) => setTimeout(r, warmup * 1000)).then(() =>
      Promise.all(logins.map((u) => loginWorker(u, stopAt))));
  }

  let floodTimer = null;
  if (ph.flood) {
    const fc = clients[ph.flood.client];
    const froom = (fc.spec.rooms || [])[0];
    const disconnectsAtStart = counters.disconnects;
    flood = { sent: 0, acks: {}, delivered: 0, disconnected: false, disconnectedAfter: null };
    const fstart = nowMs();
    floodTimer = setInterval(() => {
      if (!fc.connected) {
        if (!flood.disconnected) {
          flood.disconnected = true;
          flood.disconnectedAfter = flood.sent;
          // its own close was counted as a disconnect: it is expected, not a failure
          counters.disconnects = Math.max(disconnectsAtStart, counters.disconnects - 1);
        }
        return;
      }
      const due = Math.floor(((nowMs() - fstart) / 1000) * ph.flood.rate) - flood.sent;
      for (let k = 0; k < due; k++) {
        flood.sent++;
        fc.emit('message', { room: froom, client_msg_id: `${FLOOD_PREFIX}${RUN_ID}-${flood.sent}`, text },
          (raw) => {
            let ack = null;
            try { ack = JSON.parse(raw)[0]; } catch {}
            const code = ack ? (ack.ok ? 'ok' : ack.code) : 'bad_ack';
            flood.acks[code] = (flood.acks[code] || 0) + 1;
          });
      }
    }, 2);
  }

  await new Promise((resolve) => {
    const tick = () => {
      const t = nowMs();
      if (cpuA === null && t >= measureStart) {
        srvA = procSample(cfg.serverPids); lgA = process.cpuUsage(); statA = cpuStat();
        cpuA = t; elDelay.enable();
      }
      if (t >= stopAt) { clearInterval(timer); resolve(); return; }
      const due = Math.floor(((t - t0) / 1000) * rate) - nSent;
      for (let k = 0; k < due; k++) {
        const si = nSent % senders.length;
        const c = senders[si];
        const room = senderRooms[si];
        const cmid = `L${RUN_ID}-${(seq++).toString(36)}`;
        const members = roomMembers.get(room) || [];
        const at = nowMs();
        const measured = at >= measureStart && at <= measureEnd;
        const rec = { at, room, got: new Uint8Array(members.length), expected: false, measured };
        sent.set(cmid, rec);
        nSent++;
        if (measured) sentInWindow++;
        if (!c.connected) { counters.sendErrors++; continue; }
        const myPhase = phaseNo;
        let timer2 = null;
        const id = c.emit('message', { room, client_msg_id: cmid, text }, (raw) => {
          clearTimeout(timer2);
          if (myPhase !== phaseNo) return;
          const tAck = nowMs();
          let ack = null;
          try { ack = JSON.parse(raw)[0]; } catch {}
          if (ack && ack.ok && !ack.duplicate) {
            rec.expected = true;
            // receipts that arrived before the ack are already counted
            let missing = 0;
            for (let m = 0; m < rec.got.length; m++) if (rec.got[m] === 0) missing++;
            outstanding += missing;
            if (measured) ackLatencies.push(tAck - at);
          } else {
            counters.ackErrors++;
            bump('ack:' + ((ack && (ack.duplicate ? 'duplicate' : ack.code)) || 'bad_ack'));
          }
        });
        timer2 = setTimeout(() => {
          if (c.acks.delete(id) && myPhase === phaseNo) counters.ackTimeouts++;
        }, ackTimeoutMs);
      }
    };
    const timer = setInterval(tick, 1);
  });
  if (floodTimer) clearInterval(floodTimer);
  const srvB = procSample(cfg.serverPids);
  const lgB = process.cpuUsage(lgA);
  const statB = cpuStat();
  const wall = (nowMs() - cpuA) / 1000;
  elDelay.disable();
  // drain: until every expected delivery is in, or the drain limit
  const drainStart = nowMs();
  const drainUntil = drainStart + (ph.drain || 5) * 1000;
  while (nowMs() < drainUntil) {
    const pendingAcks = senders.reduce((n, c) => n + c.acks.size, 0);
    if (outstanding <= 0 && pendingAcks === 0) break;
    await sleep(20);
  }
  if (storm) await Promise.race([storm, sleep(5000)]);
  let lost = 0, expectedDeliveries = 0;
  for (const rec of sent.values()) {
    if (!rec.expected) continue;
    expectedDeliveries += rec.got.length;
    for (let m = 0; m < rec.got.length; m++) if (rec.got[m] === 0) lost++;
  }
  const cores = cpuDelta(statA, statB);
  const srvCpu = (srvB.cpu - srvA.cpu) / wall;
  const lgCpu = (lgB.user + lgB.system) / 1e6 / wall;
  const sc = String(cfg.serverCpu === undefined ? 0 : cfg.serverCpu);
  const lc = String(cfg.loadCpu === undefined ? 1 : cfg.loadCpu);
  Object.assign(result, {
    offered_rate: rate,
    sent_rate: sentInWindow / duration,
    sent: nSent,
    acked: nSent - counters.ackErrors - counters.ackTimeouts - counters.sendErrors,
    expected_deliveries: expectedDeliveries,
    delivered: deliveredTotal,
    delivered_per_s: deliveredInWindow / wall,
    lost, duplicates, strays,
    disconnects: counters.disconnects - disconnectsBefore,
    latency_ms: summary(latencies),
    ack_latency_ms: summary(ackLatencies),
    drain_s: (nowMs() - drainStart) / 1000,
    window_s: wall,
    server_cpu: srvCpu,          // cores
    server_cpu_us_per_delivery: deliveredInWindow ? ((srvB.cpu - srvA.cpu) * 1e6) / deliveredInWindow : null,
    server_cpu_us_per_message: sentInWindow ? ((srvB.cpu - srvA.cpu) * 1e6) / sentInWindow : null,
    server_rss: srvB.rss,
    loadgen_cpu: lgCpu,  // cores
    loadgen_loop_delay_p99_ms: elDelay.percentile(99) / 1e6,
    loadgen_loop_delay_max_ms: elDelay.max / 1e6,
    // what else ran on our cores during the window (other processes, the host)
    server_core_busy: cores[sc] ? cores[sc].busy : null,
    server_core_foreign: cores[sc] ? Math.max(0, cores[sc].busy - srvCpu) : null,
    server_core_steal: cores[sc] ? cores[sc].steal : null,
    load_core_foreign: cores[lc] ? Math.max(0, cores[lc].busy - lgCpu) : null,
    errors: JSON.parse(JSON.stringify(counters)),
  });
  if (flood) result.flood = JSON.parse(JSON.stringify(flood));
  if (storm) {
    Object.assign(result, { logins_ok: loginStats.ok, logins_failed: loginStats.failed,
      login_latency_ms: summary(loginStats.latencies) });
  }
  return result;
}

async function runIdle(result) {
  const hold = cfg.hold || 5;
  await sleep(hold * 1000);
  const srv = procSample(cfg.serverPids);
  const alive = clients.filter((c) => c.connected).length;
  Object.assign(result, { alive_after_hold: alive, server_rss: srv.rss, hold_s: hold });
}

async function runHistory(result) {
  const h = cfg.history;
  const c = clients.find((x) => x.connected);
  const lat = [];
  let errors = 0, got = 0;
  const t0 = nowMs();
  const lgA = process.cpuUsage();
  for (let i = 0; i < h.count; i++) {
    const before = h.maxSeq > h.limit ? h.limit + 1 + Math.floor(Math.random() * (h.maxSeq - h.limit)) : null;
    const req = { room: h.room, limit: h.limit };
    if (before !== null) req.before_seq = before;
    const a = nowMs();
    const ack = await c.call('history', req);
    const b = nowMs();
    if (ack && ack.ok) { lat.push(b - a); got += ack.messages.length; }
    else { errors++; bump('history:' + ((ack && ack.code) || 'no_ack')); }
    if (i < (h.warmup || 0)) lat.pop();
  }
  const lg = process.cpuUsage(lgA);
  Object.assign(result, { history_ms: summary(lat), history_errors: errors,
    messages_per_page: lat.length ? got / h.count : 0,
    loadgen_cpu: (lg.user + lg.system) / 1e6 / ((nowMs() - t0) / 1000) });
}

// ---- waves: sockets that come and go (interactive ops) ------------------------------------
// {op: 'connect', from, count}: connect clients cfg.waveClients[from .. from+count) and join
// their rooms; {op: 'send', count}: every live wave client (or the first `count`) sends one
// message and waits for its ack;
// {op: 'disconnect', keep, how}: close every live wave client but the first `keep`, with a
// clean websocket close ('close', what a closing tab does) or a TCP reset ('terminate').
let wave = [];
async function runWaveOp(result, ph) {
  const t0 = nowMs();
  const before = { ...counters, errorCodes: { ...counters.errorCodes } };
  if (ph.op === 'connect') {
    const specs = (cfg.waveClients || []).slice(ph.from || 0, (ph.from || 0) + ph.count);
    const fresh = specs.map((spec, k) => new Client(100000 + (ph.from || 0) + k,
      { ...spec, untracked: true }));
    await pool(fresh, cfg.connectConcurrency || 50, async (c) => {
      if (!(await c.connect())) return;
      for (const room of c.spec.rooms || []) {
        const ack = await c.call('join', { room });
        if (!(ack && ack.ok)) { counters.joinErrors++; bump('join:' + ((ack && ack.code) || 'no_ack')); }
      }
    });
    wave.push(...fresh);
  } else if (ph.op === 'send') {
    const text = 'x'.repeat(cfg.textBytes || 200);
    let acked = 0;
    const live = wave.filter((c) => c.connected);
    await pool(ph.count === undefined ? live : live.slice(0, ph.count), 50, async (c) => {
      const room = (c.spec.rooms || [])[0];
      const ack = await c.call('message', { room, client_msg_id: `W${RUN_ID}-${seq++}`, text }, 15000);
      if (ack && ack.ok) acked++; else { counters.ackErrors++; bump('ack:' + ((ack && ack.code) || 'bad_ack')); }
    });
    result.acked = acked;
  } else if (ph.op === 'disconnect') {
    const keep = ph.keep || 0;
    const leaving = wave.slice(keep);
    wave = wave.slice(0, keep);
    await Promise.all(leaving.map((c) => new Promise((resolve) => {
      if (!c.ws || c.ws.readyState === WebSocket.CLOSED) { resolve(); return; }
      c.closing = true;
      const timer = setTimeout(resolve, 10000);
      c.ws.once('close', () => { clearTimeout(timer); resolve(); });
      try { if (ph.how === 'terminate') c.ws.terminate(); else c.ws.close(1000); } catch { resolve(); }
    })));
    result.closed = leaving.length;
  } else throw new Error('unknown op ' + ph.op);
  Object.assign(result, { seconds: (nowMs() - t0) / 1000, live: wave.filter((c) => c.connected).length,
    connect_errors: counters.connectErrors - before.connectErrors,
    join_errors: counters.joinErrors - before.joinErrors,
    ack_errors: counters.ackErrors - before.ackErrors, error_codes: counters.errorCodes });
  return result;
}

// ---- main ----------------------------------------------------------------------------------
let finished = false;
const result = { mode: cfg.mode, clients: cfg.clients.length };
function finish(extra, code = 0) {
  if (finished) return;
  finished = true;
  clearTimeout(hardStop);
  Object.assign(result, extra || {}, { errors: counters });
  for (const c of clients) c.close();
  for (const c of wave) c.close();
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

// Interactive: after connecting, print {"ready":...}; then one JSON phase per stdin line,
// one JSON result per stdout line; "quit" (or stdin closing: the runner died) ends it.
async function interactive() {
  process.stdout.write(JSON.stringify({ ready: true, ...result }) + '\n');
  const rl = require('readline').createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      if (line.trim() === 'quit') { finish({ quit: true }); return; }
      const ph = JSON.parse(line);
      const out = { phase: ph };
      try { await (ph.op ? runWaveOp(out, ph) : runChat(out, ph)); } catch (err) { out.failed = String(err); }
      process.stdout.write(JSON.stringify(out) + '\n');
    });
  });
  rl.on('close', () => { queue.then(() => finish({ stdin_closed: true })); });
}

(async () => {
  const rssBefore = procSample(cfg.serverPids).rss;
  Object.assign(result, { server_rss_before: rssBefore });
  const conn = await connectAll();
  Object.assign(result, conn, { join_errors: counters.joinErrors, connect_errors: counters.connectErrors,
    error_codes: { ...counters.errorCodes } });
  Object.assign(result, await settleAfterJoins());
  if (cfg.mode === 'chat' && cfg.interactive) { await interactive(); return; }
  if (cfg.mode === 'chat') await runChat(result, cfg);
  else if (cfg.mode === 'idle') await runIdle(result);
  else if (cfg.mode === 'history') await runHistory(result);
  else if (cfg.mode === 'join') { /* connecting and joining was the measurement */ }
  else throw new Error('unknown mode ' + cfg.mode);
  finish();
})().catch((err) => { log('failed: ' + (err.stack || err)); finish({ failed: String(err) }, 1); });
