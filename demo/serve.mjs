#!/usr/bin/env node
/**
 * `npm run demo`: builds the demo (demo/build.mjs) and serves demo/dist/ on localhost, then prints the URL.
 *
 *   node demo/serve.mjs [--port 8080] [--host 127.0.0.1] [--no-build]
 *
 * A plain static file server (node:http, no dependencies): the page and everything it loads come from
 * this one origin, so it keeps working with the network off. Ctrl-C stops it.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildDemo } from './build.mjs';

const demoDir = dirname(fileURLToPath(import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Serves the files of `dir` over HTTP. Resolves to {server, url, requests} once listening; port 0 picks a
 * free port. `requests` counts the paths served (the e2e test checks the page asked for nothing else).
 */
export function serveDir(dir, { host = '127.0.0.1', port = 0 } = {}) {
  const base = resolve(dir);
  const requests = [];
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = normalize(join(base, path));
    requests.push(path);
    if ((file !== base && !file.startsWith(base + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const shownHost = host.includes(':') ? `[${host}]` : host;
      resolvePromise({ server, url: `http://${shownHost}:${address.port}/`, requests });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const value = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  if (args.includes('--help') || args.includes('-h')) {
    console.log('usage: npm run demo [-- --port 8080] [--host 127.0.0.1] [--no-build]');
    process.exit(0);
  }
  const dist = join(demoDir, 'dist');
  if (!args.includes('--no-build') || !existsSync(join(dist, 'app.js'))) {
    try {
      const r = await buildDemo({ outdir: dist });
      console.log(`built ${dist} in ${r.seconds.toFixed(1)}s (app.js ${(r.bundleBytes / 1e6).toFixed(2)} MB)`);
    } catch (e) {
      console.error(`demo build failed: ${e.message}`);
      process.exit(1);
    }
  }
  const host = value('--host', '127.0.0.1');
  const wanted = Number(value('--port', '8080'));
  let served;
  try {
    served = await serveDir(dist, { host, port: wanted });
  } catch (e) {
    if (e.code !== 'EADDRINUSE') throw e;
    served = await serveDir(dist, { host, port: 0 });
    console.log(`port ${wanted} is in use; using another one`);
  }
  console.log(`tfjs-gta demo: ${served.url}`);
  console.log('open it in a browser (Chrome, Edge or Firefox); Ctrl-C stops the server');
}
