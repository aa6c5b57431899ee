// The load generator of bench_frames.py (node + the `ws` package; NODE_PATH points at it).
//
//   node ws_load.js load URL CONNECTIONS SECONDS PREFIX   -> one JSON line: replies, seconds, p50/p99 ms
//   node ws_load.js idle URL CONNECTIONS 0 PREFIX         -> "ready N" once all announced; holds until stdin closes
//
// Each connection first sends announce_host (a unique host) and waits for the reply; in
// `load` mode it then re-announces in a loop, one request in flight, for SECONDS.
"use strict";
const WebSocket = require("ws");
const [mode, url, connections, seconds, prefix] = process.argv.slice(2);
const n = Number(connections);

function host(i) {
  return { hostname: `${prefix}-${i}`, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
           port: 8002, download_port: 8001 };
}

const sockets = [];
let open = 0, failed = 0, replies = 0, counting = false;
const lat = [];
const cpu0 = process.cpuUsage();

function start(i) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  sockets.push(ws);
  const h = host(i);
  let id = 0, sentAt = 0n;
  const send = () => {
    id += 1;
    sentAt = process.hrtime.bigint();
    ws.send(JSON.stringify({ type: "announce_host", id, host: h, interval: 3600 }));
  };
  ws.on("open", send);
  ws.on("message", () => {
    if (id === 1) { open += 1; if (open + failed === n) allOpen(); if (mode === "idle") return; }
    if (counting) { replies += 1; if (replies % 16 === 0) lat.push(Number(process.hrtime.bigint() - sentAt) / 1e6); }
    if (mode === "load" && !stopped) send();
  });
  ws.on("error", () => { failed += 1; if (open + failed === n) allOpen(); });
}

let stopped = false;
function allOpen() {
  if (mode === "idle") {
    console.log(`ready ${open} failed ${failed}`);
    process.stdin.resume();
    process.stdin.on("end", () => { for (const ws of sockets) ws.terminate(); process.exit(0); });
    return;
  }
  counting = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    counting = false; stopped = true;
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    lat.sort((a, b) => a - b);
    const pct = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0;
    const cpu = process.cpuUsage(cpu0);
    console.log(JSON.stringify({ replies, seconds: secs, open, failed, p50_ms: pct(0.5), p99_ms: pct(0.99),
                                 client_cpu_s: (cpu.user + cpu.system) / 1e6 }));
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }, Number(seconds) * 1000);
}

let i = 0;
function openSome() {  // at most 200 handshakes in flight
  const target = Math.min(n, open + failed + 200);
  while (i < target) start(i++);
  if (i < n) setTimeout(openSome, 5);
}
openSome();
