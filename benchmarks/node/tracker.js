// bittorrent-tracker's WebSocket tracker (the WebTorrent one) on 127.0.0.1, a free port.
//
//   node benchmarks/node/tracker.js --modules DIR/node_modules
//   tracker listening: ws://127.0.0.1:PORT/        (the first line on stdout)
//
// DIR is where `npm install --ignore-scripts bittorrent-tracker@11.2.3` ran. Only the
// server module is loaded (bittorrent-tracker/server: ws and the swarm code; no WebRTC,
// no native modules). HTTP and UDP trackers are off, stats are off. SIGTERM stops it.
'use strict'
const path = require('path')
const { pathToFileURL } = require('url')

function option (name, fallback) {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : fallback
}

async function main () {
  const modules = option('--modules', path.join(process.cwd(), 'node_modules'))
  const entry = pathToFileURL(path.join(modules, 'bittorrent-tracker', 'server.js')).href
  const { default: Server } = await import(entry) // ESM only: import(), not require()
  const server = new Server({ udp: false, http: false, ws: true, stats: false })
  server.on('error', (err) => {
    console.error(`tracker error: ${err.message}`)
    process.exit(1)
  })
  server.on('warning', () => {}) // bad requests from a load generator are not our concern
  server.listen(0, '127.0.0.1', () => {
    console.log(`tracker listening: ws://127.0.0.1:${server.ws.address().port}/`)
  })
  // bench_compare.py starts node with --expose-gc and sends SIGUSR2 before reading RSS.
  process.on('SIGUSR2', () => { if (global.gc) global.gc() })
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
