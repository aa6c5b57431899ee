// A small node `ws` load generator: N connections, one request in flight each.
//
//   node benchmarks/node/loadgen.js --modules DIR/node_modules --url ws://127.0.0.1:PORT/ws \
//        --connections 100 --protocol scheduler|tracker [--batch-size 10] [--prefix P]
//
// It opens the connections (scheduler protocol: subprotocol scheduler.v1, each announces a
// host with a unique hostname first; tracker: the WebTorrent announce JSON), prints
// `ready {"opened": N, "failed": F}` and obeys stdin, one command a line:
//   go {"duration": S}   every connection sends back to back for S seconds; then it prints
//                        `result {"replies", "updates", "seconds", "rate", "p50_ms", "p99_ms",
//                        "errors", "first_error", "cpu_percent"}` (cpu_percent: this process, % of one core)
//   quit                 close every connection and exit (also on stdin EOF)
// With --batch-size B > 0 (scheduler protocol) each request is one `batch` frame of B
// announce_host items; a reply of type `error` counts in errors (today's server has no batch).
'use strict'
const path = require('path')
const readline = require('readline')

function option (name, fallback) {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : fallback
}

const modules = option('--modules', path.join(process.cwd(), 'node_modules'))
const WebSocket = require(path.join(modules, 'ws'))
const url = option('--url')
const connections = Number(option('--connections', '100'))
const protocol = option('--protocol', 'scheduler')
const batchSize = Number(option('--batch-size', '0'))
const prefix = option('--prefix', `node${process.pid}`)
const openTimeoutMs = 1000 * Number(option('--open-timeout', '60'))

function announceHost (i, id) {
  const a = Math.floor(i / 65536) % 256
  const b = i % 65536
  return {
    type: 'announce_host',
    id,
    host: { hostname: `${prefix}-${i}`, ip: `10.${a}.${b >> 8}.${b & 255}`, port: 8002, download_port: 8001 },
    interval: 3600
  }
}

function trackerAnnounce (i, first) {
  const message = {
    action: 'announce',
    info_hash: `loadgen-swarm-${String(i % 100).padStart(6, '0')}`,
    peer_id: `${prefix}-${i}`.padStart(20, '0').slice(-20),
    uploaded: 0,
    downloaded: 0,
    left: 0,
    numwant: 0,
    offers: []
  }
  if (first) message.event = 'started'
  return message
}

class Conn {
  constructor (index) {
    this.index = index
    this.nextId = 0
    this.inFlight = null // {id, sent}
    this.window = null
  }

  frame () {
    const id = ++this.nextId
    if (protocol === 'tracker') return [id, trackerAnnounce(this.index, id === 1)]
    if (batchSize > 0) {
      const messages = []
      for (let k = 0; k < batchSize; k++) messages.push(announceHost(this.index, id * 10000 + k))
      return [id, { type: 'batch', id, messages }]
    }
    return [id, announceHost(this.index, id)]
  }

  // Whether `reply` answers the request in flight: 'ok', 'error' or null (not ours: skip).
  judge (reply) {
    if (protocol === 'tracker') {
      if (reply.action !== 'announce' || reply.offer || reply.answer) return null
      return reply['failure reason'] ? 'error' : 'ok'
    }
    if (reply.id !== this.inFlight.id) return null
    if (reply.type === 'error') return 'error'
    return reply.type === (batchSize > 0 ? 'batch' : 'host_accepted') ? 'ok' : 'error'
  }

  // The set-up announce (id 0) is always a plain announce_host, even in batch mode.
  judgeSetup (reply) {
    if (protocol === 'tracker') return this.judge(reply)
    if (reply.id !== 0) return null
    return reply.type === 'host_accepted' ? 'ok' : 'error'
  }

  open () {
    return new Promise((resolve) => {
      const subprotocols = protocol === 'tracker' ? [] : ['scheduler.v1']
      const ws = new WebSocket(url, subprotocols, { perMessageDeflate: false })
      this.ws = ws
      const timer = setTimeout(() => { ws.terminate(); resolve(false) }, openTimeoutMs)
      ws.on('error', () => { clearTimeout(timer); resolve(false) })
      ws.on('open', () => {
        const [id, message] = protocol === 'tracker' ? this.frame() : [0, announceHost(this.index, 0)]
        this.inFlight = { id, sent: 0 }
        ws.send(JSON.stringify(message))
      })
      ws.on('message', (data) => {
        let reply
        try { reply = JSON.parse(data) } catch (err) { return }
        if (this.window === null) { // the set-up announce
          const verdict = this.judgeSetup(reply)
          if (verdict === null) return
          clearTimeout(timer)
          this.inFlight = null
          resolve(verdict === 'ok')
          return
        }
        const verdict = this.judge(reply)
        if (verdict === null) return
        const now = process.hrtime.bigint()
        const w = this.window
        if (now <= w.end) {
          if (verdict === 'ok') {
            w.replies++
            w.latencies.push(Number(now - this.inFlight.sent) / 1e6)
          } else {
            w.errors++
            if (w.firstError === null) w.firstError = `${reply.code}: ${reply.message}`
          }
        }
        this.inFlight = null
        if (now < w.end && verdict === 'ok') this.send()
        else w.done()
      })
    })
  }

  send () {
    const [id, message] = this.frame()
    this.inFlight = { id, sent: process.hrtime.bigint() }
    this.ws.send(JSON.stringify(message))
  }
}

function percentile (sorted, fraction) {
  if (!sorted.length) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]
}

async function runWindow (conns, seconds) {
  const start = process.hrtime.bigint()
  const cpu0 = process.cpuUsage()
  const w = {
    end: start + BigInt(Math.round(seconds * 1e9)),
    replies: 0,
    errors: 0,
    latencies: [],
    pending: conns.length,
    firstError: null,
    done: null
  }
  await new Promise((resolve) => {
    w.done = () => { if (--w.pending === 0) resolve() }
    for (const conn of conns) {
      conn.window = w
      conn.send()
    }
    // A connection whose reply never comes must not hold the result back forever.
    setTimeout(resolve, (seconds + 10) * 1000)
  })
  const elapsed = seconds
  const cpu = process.cpuUsage(cpu0)
  w.latencies.sort((a, b) => a - b)
  const updates = w.replies * (batchSize > 0 ? batchSize : 1)
  return {
    replies: w.replies,
    updates,
    seconds: elapsed,
    rate: w.replies / elapsed,
    updates_rate: updates / elapsed,
    p50_ms: percentile(w.latencies, 0.5),
    p99_ms: percentile(w.latencies, 0.99),
    errors: w.errors,
    first_error: w.firstError,
    cpu_percent: (100 * (cpu.user + cpu.system)) / 1e6 / elapsed
  }
}

async function main () {
  const conns = []
  for (let i = 0; i < connections; i++) conns.push(new Conn(i))
  const opened = []
  let failed = 0
  const batch = 200 // handshakes at once
  for (let i = 0; i < conns.length; i += batch) {
    const results = await Promise.all(conns.slice(i, i + batch).map((c) => c.open()))
    results.forEach((ok, k) => { if (ok) opened.push(conns[i + k]); else failed++ })
  }
  console.log(`ready ${JSON.stringify({ opened: opened.length, failed })}`)
  const input = readline.createInterface({ input: process.stdin })
  for await (const line of input) {
    const [word, ...rest] = line.split(' ')
    if (word === 'go') {
      const { duration } = JSON.parse(rest.join(' '))
      console.log(`result ${JSON.stringify(await runWindow(opened, duration))}`)
    } else if (word === 'quit') {
      break
    }
  }
  for (const conn of conns) if (conn.ws) conn.ws.terminate()
  console.log('closed {}')
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
