/* The landing page of the HTTP relay: see relay-page.h. */
#include "server/relay-page.h"

#include <string.h>

#include "core/linkcrypt.h"

/* The page's one stylesheet. It is the same on every page, so the
 * Content-Security-Policy allows it by its hash rather than allowing
 * inline styles in general. */
static const char page_style[] =
    ":root{color-scheme:light dark;--bg:#eef1f5;--card:#fff;--fg:#111827;--muted:#4b5563;"
    "--line:#e5e7eb;--accent:#1d4ed8;--accent-hover:#1e3a8a;--tint:#dbeafe;--icon:#1d4ed8;"
    "--ring:#b45309;--bad:#991b1b;--bad-bg:#fef2f2;--good:#166534}"
    "@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#1b1e25;--fg:#f3f4f6;"
    "--muted:#b4bac6;--line:#2d323c;--accent:#2563eb;--accent-hover:#1d4ed8;--tint:#1e2a44;"
    "--icon:#93c5fd;--ring:#fbbf24;--bad:#fecaca;--bad-bg:#3b1515;--good:#86efac}}"
    "*{box-sizing:border-box}"
    "[hidden]{display:none!important}"
    "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;"
    "padding:1rem;background:var(--bg);color:var(--fg);"
    "font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}"
    "main{width:100%;max-width:30rem;background:var(--card);border-radius:16px;"
    "box-shadow:0 1px 3px rgba(0,0,0,.08),0 10px 30px rgba(0,0,0,.08);padding:2rem 1.5rem;"
    "text-align:center}"
    ".icon{display:inline-flex;align-items:center;justify-content:center;width:4rem;"
    "height:4rem;border-radius:50%;background:var(--tint);color:var(--icon)}"
    ".icon svg{width:2rem;height:2rem;fill:none;stroke:currentColor;stroke-width:1.8;"
    "stroke-linecap:round;stroke-linejoin:round}"
    ".kind{margin:1rem 0 0;color:var(--muted);font-size:.8rem;font-weight:600;"
    "letter-spacing:.08em;text-transform:uppercase}"
    "h1{margin:.25rem 0;font-size:1.5rem;line-height:1.3;overflow-wrap:anywhere}"
    ".size{margin:0 0 1.5rem;color:var(--muted)}"
    ".button{display:inline-flex;align-items:center;justify-content:center;width:100%;"
    "max-width:20rem;min-height:3rem;padding:.75rem 1.5rem;border:0;border-radius:10px;"
    "background:var(--accent);color:#fff;font:inherit;font-weight:600;text-decoration:none;"
    "cursor:pointer}"
    ".button:hover{background:var(--accent-hover)}"
    ".button:disabled{opacity:.65;cursor:progress}"
    "a,button{-webkit-tap-highlight-color:transparent}"
    "a:focus-visible,button:focus-visible{outline:3px solid var(--ring);outline-offset:3px}"
    ".alt{margin:.75rem 0 0;font-size:.9rem}"
    ".alt a{color:inherit}"
    "progress{display:block;width:100%;max-width:20rem;height:.5rem;margin:1rem auto 0;"
    "accent-color:var(--accent)}"
    ".status{min-height:1.5em;margin:.75rem 0 0;color:var(--muted)}"
    ".status:empty{min-height:0;margin:0}"
    ".status.good{color:var(--good);font-weight:600}"
    ".problem{margin:1rem 0 0;padding:.75rem 1rem;border-radius:8px;background:var(--bad-bg);"
    "color:var(--bad);text-align:left}"
    ".note{margin:1.5rem 0 0;padding-top:1rem;border-top:1px solid var(--line);"
    "color:var(--muted);font-size:.875rem}"
    "code{font-family:ui-monospace,\"SFMono-Regular\",Menlo,monospace;font-size:.9em}";

/* The JavaScript that opens an FLE1 stream (docs/protocol.md §10.7) with
 * WebCrypto. It is shared by the page (decrypting in the tab when there is
 * no service worker) and the service worker, so both read the format the
 * same way: records of 65552 bytes, nonce = index (8 bytes big-endian) ‖
 * flag (4 bytes, 1 on the last record), the header as additional data, one
 * record held back until the end tells whether it is the last. A stream
 * that fails a tag, ends early or breaks off errors; it never ends as if
 * it were complete. */
static const char fle1_js[] =
    "const fle1 = (() => {\n"
    "  'use strict';\n"
    "  const HEADER = new Uint8Array([70, 82, 89, 76, 78, 75, 48, 49]);\n"
    "  const SEALED = 65552;\n"
    "  const failure = (text) => Object.assign(new Error(text), {fle1: true});\n"
    "  const opener = (key, progress) => {\n"
    "    const parts = [];\n"
    "    let have = 0;\n"
    "    let index = 0;\n"
    "    let header = false;\n"
    "    let given = 0;\n"
    "    let seen = 0;\n"
    "    const take = (n) => {\n"
    "      const out = new Uint8Array(n);\n"
    "      let at = 0;\n"
    "      while (at < n) {\n"
    "        const part = parts[0];\n"
    "        const k = Math.min(part.length, n - at);\n"
    "        out.set(part.subarray(0, k), at);\n"
    "        at += k;\n"
    "        if (k === part.length) parts.shift();\n"
    "        else parts[0] = part.subarray(k);\n"
    "      }\n"
    "      have -= n;\n"
    "      return out;\n"
    "    };\n"
    "    const open = async (record, last) => {\n"
    "      const nonce = new Uint8Array(12);\n"
    "      const view = new DataView(nonce.buffer);\n"
    "      view.setUint32(0, Math.floor(index / 4294967296));\n"
    "      view.setUint32(4, index % 4294967296);\n"
    "      view.setUint32(8, last ? 1 : 0);\n"
    "      let plain;\n"
    "      try {\n"
    "        plain = await crypto.subtle.decrypt(\n"
    "            {name: 'AES-GCM', iv: nonce, additionalData: HEADER, tagLength: 128}, key, "
    "record);\n"
    "      } catch (e) {\n"
    "        throw failure('The download failed its integrity check at encrypted record ' + index "
    "+\n"
    "            ': it was altered or cut short on the way, or the key in the link is wrong.');\n"
    "      }\n"
    "      index++;\n"
    "      given += plain.byteLength;\n"
    "      progress(given);\n"
    "      return new Uint8Array(plain);\n"
    "    };\n"
    "    return {\n"
    "      async transform(chunk, out) {\n"
    "        parts.push(chunk);\n"
    "        have += chunk.length;\n"
    "        seen += chunk.length;\n"
    "        if (!header) {\n"
    "          if (have < HEADER.length) return;\n"
    "          const head = take(HEADER.length);\n"
    "          if (!head.every((b, i) => b === HEADER[i]))\n"
    "            throw failure('This is not a ferry encrypted link: the download does not start ' "
    "+\n"
    "                'with FRYLNK01.');\n"
    "          header = true;\n"
    "        }\n"
    "        while (have > SEALED) out.enqueue(await open(take(SEALED), false));\n"
    "      },\n"
    "      async flush(out) {\n"
    "        if (!header || have < 16)\n"
    "          throw failure('The download ended early, after ' + seen + ' bytes: it was cut "
    "short.');\n"
    "        out.enqueue(await open(take(have), true));\n"
    "      },\n"
    "    };\n"
    "  };\n"
    "  const decrypt = (body, key, on) => {\n"
    "    const pipe = new TransformStream(opener(key, on.progress));\n"
    "    body.pipeTo(pipe.writable).then(on.done, (e) => {\n"
    "      on.error(e && e.fle1 ? e : failure('The download broke off' +\n"
    "          (e && e.message ? ' (' + e.message + ')' : '') + ': it is incomplete.'));\n"
    "    });\n"
    "    return pipe.readable;\n"
    "  };\n"
    "  return {decrypt};\n"
    "})();\n";

/* The script of an encrypted link's page. It reads the key from the
 * fragment (never sent to the server), hands it as a non-extractable
 * CryptoKey to the service worker by postMessage and opens NAME?decrypt=ID
 * in a hidden frame, which the worker answers with the plaintext as an
 * attachment: the browser's download manager writes it to disk as it
 * arrives. Without a usable worker it decrypts in the tab into a Blob and
 * saves that once every record checked. Page data comes from data-*
 * attributes, so the script is the same on every page and the CSP can
 * allow it by hash. */
static const char page_js[] =
    "(() => {\n"
    "  'use strict';\n"
    "  const $ = (id) => document.getElementById(id);\n"
    "  const page = $('relay');\n"
    "  const info = page.dataset;\n"
    "  const go = $('go');\n"
    "  const bar = $('bar');\n"
    "  const status = $('status');\n"
    "  const problem = $('problem');\n"
    "  const size = Number(info.plain);\n"
    "  const here = location.pathname;\n"
    "  let key = null;\n"
    "  let worker = null;\n"
    "  let busy = false;\n"
    "\n"
    "  const human = (n) => {\n"
    "    const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];\n"
    "    let i = 0;\n"
    "    while (n >= 1000 && i < units.length - 1) {\n"
    "      n /= 1000;\n"
    "      i++;\n"
    "    }\n"
    "    return i === 0 ? n + ' bytes' : n.toFixed(1) + ' ' + units[i];\n"
    "  };\n"
    "  const say = (text, good) => {\n"
    "    status.textContent = text;\n"
    "    status.classList.toggle('good', !!good);\n"
    "  };\n"
    "  const fail = (text) => {\n"
    "    problem.textContent = text;\n"
    "    problem.hidden = false;\n"
    "    bar.hidden = true;\n"
    "    say('');\n"
    "  };\n"
    "  const progress = (n) => {\n"
    "    if (size > 0) {\n"
    "      bar.max = size;\n"
    "      bar.value = n;\n"
    "      say('Decrypting: ' + human(n) + ' of ' + human(size));\n"
    "    } else {\n"
    "      say('Decrypting: ' + human(n));\n"
    "    }\n"
    "  };\n"
    "  const finished = (n) => {\n"
    "    bar.max = 1;\n"
    "    bar.value = 1;\n"
    "    say('Done: ' + info.save + ' (' + human(n) + ') was decrypted and checked. Your browser ' "
    "+\n"
    "        'saves it in its downloads folder.', true);\n"
    "  };\n"
    "  const readKey = () => {\n"
    "    const m = /(?:^#|&)k=([A-Za-z0-9_+/-]{43})=?(?:&|$)/.exec(location.hash);\n"
    "    if (!m) return null;\n"
    "    const text = atob(m[1].replace(/-/g, '+').replace(/_/g, '/'));\n"
    "    return Uint8Array.from(text, (c) => c.charCodeAt(0));\n"
    "  };\n"
    "  const serverText = async (res) =>\n"
    "    (await res.text()).trim() || 'The server answered ' + res.status + '.';\n"
    "  const within = (promise, ms) => Promise.race([\n"
    "    promise, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);\n"
    "\n"
    "  const viaWorker = async () => {\n"
    "    if (!worker || !(await worker)) return false;\n"
    "    const reg = await within(navigator.serviceWorker.ready, 5000);\n"
    "    if (!reg || !reg.active) return false;\n"
    "    const sw = reg.active;\n"
    "    const id = Array.from(crypto.getRandomValues(new Uint8Array(16)),\n"
    "        (b) => b.toString(16).padStart(2, '0')).join('');\n"
    "    return new Promise((resolve, reject) => {\n"
    "      const channel = new MessageChannel();\n"
    "      let frame = null;\n"
    "      let started = false;\n"
    "      const ping = setInterval(() => sw.postMessage({type: 'ping'}), 10000);\n"
    "      const end = (settle) => {\n"
    "        clearInterval(ping);\n"
    "        clearTimeout(watchdog);\n"
    "        channel.port1.close();\n"
    "        if (frame) setTimeout(() => frame.remove(), 5000);\n"
    "        settle();\n"
    "      };\n"
    "      const watchdog = setTimeout(() => {\n"
    "        if (!started) end(() => resolve(false));\n"
    "      }, 10000);\n"
    "      channel.port1.onmessage = (e) => {\n"
    "        const m = e.data;\n"
    "        if (m.type === 'ready') {\n"
    "          frame = document.createElement('iframe');\n"
    "          frame.hidden = true;\n"
    "          frame.title = 'download';\n"
    "          frame.src = here + '?decrypt=' + id;\n"
    "          document.body.append(frame);\n"
    "        } else if (m.type === 'start') {\n"
    "          started = true;\n"
    "          page.dataset.via = 'worker';\n"
    "        } else if (m.type === 'progress') {\n"
    "          progress(m.done);\n"
    "        } else if (m.type === 'done') {\n"
    "          end(() => resolve(true));\n"
    "          finished(m.done);\n"
    "        } else if (m.type === 'error') {\n"
    "          end(() => reject(Object.assign(new Error(m.message), {fle1: m.broken})));\n"
    "        }\n"
    "      };\n"
    "      sw.postMessage({type: 'job', id, key, url: here + '?download=1', save: info.save,\n"
    "        mime: info.mime, size}, [channel.port2]);\n"
    "    });\n"
    "  };\n"
    "\n"
    "  const viaMemory = async () => {\n"
    "    page.dataset.via = 'memory';\n"
    "    const res = await fetch(here + '?download=1', {cache: 'no-store', credentials: 'omit'});\n"
    "    if (!res.ok) throw new Error(await serverText(res));\n"
    "    let given = 0;\n"
    "    let broken = null;\n"
    "    const reader = fle1.decrypt(res.body, key, {\n"
    "      progress: (n) => {\n"
    "        given = n;\n"
    "        progress(n);\n"
    "      },\n"
    "      done: () => {},\n"
    "      error: (e) => {\n"
    "        broken = e;\n"
    "      },\n"
    "    }).getReader();\n"
    "    const parts = [];\n"
    "    try {\n"
    "      for (;;) {\n"
    "        const {done, value} = await reader.read();\n"
    "        if (done) break;\n"
    "        parts.push(value);\n"
    "      }\n"
    "    } catch (e) {\n"
    "      throw broken || Object.assign(new Error('The download broke off (' + e.message +\n"
    "          '): it is incomplete.'), {fle1: true});\n"
    "    }\n"
    "    const url = URL.createObjectURL(new Blob(parts, {type: info.mime}));\n"
    "    const link = document.createElement('a');\n"
    "    link.href = url;\n"
    "    link.download = info.save;\n"
    "    link.hidden = true;\n"
    "    document.body.append(link);\n"
    "    link.click();\n"
    "    link.remove();\n"
    "    setTimeout(() => URL.revokeObjectURL(url), 60000);\n"
    "    finished(given);\n"
    "  };\n"
    "\n"
    "  const start = async () => {\n"
    "    if (busy || !key) return;\n"
    "    busy = true;\n"
    "    go.disabled = true;\n"
    "    problem.hidden = true;\n"
    "    bar.hidden = false;\n"
    "    bar.removeAttribute('value');\n"
    "    say('Starting the download');\n"
    "    try {\n"
    "      if (!(await viaWorker())) await viaMemory();\n"
    "    } catch (e) {\n"
    "      fail(e.fle1 ? e.message + ' Nothing was saved as a complete file (delete a partial ' +\n"
    "          'download if your browser kept one); ask the sender for a new link.' : e.message);\n"
    "    } finally {\n"
    "      busy = false;\n"
    "      go.disabled = false;\n"
    "    }\n"
    "  };\n"
    "\n"
    "  if (!window.isSecureContext || !window.crypto || !crypto.subtle) {\n"
    "    fail('Decrypting in the browser needs a secure (https) connection, and this page came ' "
    "+\n"
    "        'over plain http. Ask the sender for an https link, or run ferry receive with the ' "
    "+\n"
    "        'whole link in a terminal.');\n"
    "    return;\n"
    "  }\n"
    "  const raw = readKey();\n"
    "  if (!raw || raw.length !== 32) {\n"
    "    fail('This link has no key: the part that starts with #k= is missing or cut. Ask the ' +\n"
    "        'sender for the whole link and open all of it.');\n"
    "    return;\n"
    "  }\n"
    "  if (info.valid !== '1') {\n"
    "    fail('This upload is not an encrypted ferry stream: its size fits no encrypted file. ' +\n"
    "        'Ask the sender to send it again.');\n"
    "    return;\n"
    "  }\n"
    "  if ('serviceWorker' in navigator) {\n"
    "    worker = navigator.serviceWorker.register('/relay-sw.js', {scope: '/r/'}).catch(() => "
    "null);\n"
    "  }\n"
    "  crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']).then((k) => {\n"
    "    key = k;\n"
    "    go.hidden = false;\n"
    "    go.disabled = false;\n"
    "    go.addEventListener('click', start);\n"
    "  }, () => fail('The key in this link cannot be used. Ask the sender for the whole link.'));\n"
    "})();\n";

/* The service worker /relay-sw.js: it keeps the jobs pages hand it and
 * answers NAME?decrypt=ID with the decrypted download. */
static const char worker_js[] =
    "(() => {\n"
    "  'use strict';\n"
    "  const jobs = new Map();\n"
    "  self.addEventListener('install', () => self.skipWaiting());\n"
    "  self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));\n"
    "  self.addEventListener('message', (e) => {\n"
    "    const m = e.data;\n"
    "    if (!m || m.type !== 'job' || !e.ports[0]) return;\n"
    "    jobs.set(m.id, Object.assign({port: e.ports[0]}, m));\n"
    "    setTimeout(() => jobs.delete(m.id), 60000);\n"
    "    e.ports[0].postMessage({type: 'ready'});\n"
    "  });\n"
    "  const serve = async (job) => {\n"
    "    const port = job.port;\n"
    "    port.postMessage({type: 'start'});\n"
    "    let res;\n"
    "    try {\n"
    "      res = await fetch(job.url, {cache: 'no-store', credentials: 'omit'});\n"
    "    } catch (e) {\n"
    "      port.postMessage({type: 'error', message: 'Cannot reach the server (' + e.message + "
    "').'});\n"
    "      return Response.error();\n"
    "    }\n"
    "    if (!res.ok) {\n"
    "      const text = (await res.text()).trim();\n"
    "      port.postMessage({type: 'error', message: text || 'The server answered ' + res.status + "
    "'.'});\n"
    "      return Response.error();\n"
    "    }\n"
    "    let last = 0;\n"
    "    let given = 0;\n"
    "    const body = fle1.decrypt(res.body, job.key, {\n"
    "      progress: (n) => {\n"
    "        given = n;\n"
    "        const now = Date.now();\n"
    "        if (now - last < 200) return;\n"
    "        last = now;\n"
    "        port.postMessage({type: 'progress', done: n});\n"
    "      },\n"
    "      done: () => port.postMessage({type: 'done', done: given}),\n"
    "      error: (e) => port.postMessage({type: 'error', message: e.message, broken: true}),\n"
    "    });\n"
    "    const headers = {\n"
    "      'Content-Type': job.mime,\n"
    "      'Content-Disposition': 'attachment; filename=\"' + job.save.replace(/[^A-Za-z0-9._-]/g, "
    "'_') +\n"
    "          '\"; filename*=UTF-8' + \"''\" + encodeURIComponent(job.save),\n"
    "      'Cache-Control': 'no-store',\n"
    "    };\n"
    "    if (job.size >= 0) headers['Content-Length'] = String(job.size);\n"
    "    return new Response(body, {headers});\n"
    "  };\n"
    "  self.addEventListener('fetch', (e) => {\n"
    "    const url = new URL(e.request.url);\n"
    "    const id = url.searchParams.get('decrypt');\n"
    "    if (id === null || url.origin !== self.location.origin) return;\n"
    "    const job = jobs.get(id);\n"
    "    jobs.delete(id);\n"
    "    if (!job) {\n"
    "      e.respondWith(new Response('This download is no longer known to the page. Go back to "
    "the ' +\n"
    "          'link and press the button again.\\n',\n"
    "          {status: 404, headers: {'Content-Type': 'text/plain; charset=utf-8'}}));\n"
    "      return;\n"
    "    }\n"
    "    e.respondWith(serve(job));\n"
    "  });\n"
    "})();\n";

static const char icon_file[] =
    "<path d=\"M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z\"/>"
    "<path d=\"M14 3v5h5M9 13h6M9 17h4\"/>";
static const char icon_folder[] =
    "<path d=\"M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z\"/>";
static const char icon_lock[] = "<rect x=\"5\" y=\"11\" width=\"14\" height=\"10\" rx=\"2\"/>"
                                "<path d=\"M8 11V7a4 4 0 0 1 8 0v4M12 15v2\"/>";

/* "'sha256-BASE64'" of text, the CSP source that allows exactly that
 * inline element. Free with g_free(). */
static char *
csp_hash(const char *text)
{
  guint8 digest[32];
  gsize len = sizeof digest;
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, (const guchar *)text, (gssize)strlen(text));
  g_checksum_get_digest(sum, digest, &len);
  g_checksum_free(sum);
  char *b64 = g_base64_encode(digest, len);
  char *source = g_strdup_printf("'sha256-%s'", b64);
  g_free(b64);
  return source;
}

/* What every page and the worker share, made once: the two scripts (the
 * FLE1 code first in each) and the two policies. A plain or folder page
 * has no script at all; an encrypted page runs its one inline script,
 * fetches its own download, registers the worker and opens the download
 * frame, all on this server. Neither may be framed or post forms. */
typedef struct {
  char *page_script;
  char *worker_script;
  char *csp_plain;
  char *csp_script;
} Assets;

static const Assets *
assets(void)
{
  static gsize once = 0;
  static Assets a;
  if (g_once_init_enter(&once)) {
    a.page_script = g_strconcat(fle1_js, page_js, NULL);
    a.worker_script = g_strconcat(fle1_js, worker_js, NULL);
    char *style = csp_hash(page_style);
    char *js = csp_hash(a.page_script);
    const char *common = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    a.csp_plain = g_strdup_printf("default-src 'none'; style-src %s; %s", style, common);
    a.csp_script = g_strdup_printf("default-src 'none'; style-src %s; script-src %s; "
                                   "connect-src 'self'; worker-src 'self'; frame-src 'self'; %s",
                                   style, js, common);
    g_free(style);
    g_free(js);
    g_once_init_leave(&once, 1);
  }
  return &a;
}

/* name with suffix appended, unless it ends so already (as relay.c names
 * downloads). Free with g_free(). */
static char *
with_suffix(const char *name, const char *suffix)
{
  if (g_str_has_suffix(name, suffix))
    return g_strdup(name);
  return g_strconcat(name, suffix, NULL);
}

/* "3.1 MB (3145728 bytes)", or what is known when size is -1. Free with
 * g_free(). */
static char *
size_text(gint64 size)
{
  if (size < 0)
    return g_strdup("size not known until the end");
  char *human = g_format_size((guint64)size);
  if (size < 1000)
    return human; /* "100 bytes" says it all */
  char *text = g_strdup_printf("%s (%" G_GINT64_FORMAT " bytes)", human, size);
  g_free(human);
  return text;
}

/* A file: its size and a plain link to the bytes; no script needed. */
static void
render_file(GString *p, const FerryRelayPage *info, const char *name)
{
  char *size = size_text(info->size);
  g_string_append_printf(
      p,
      "<h1>%s</h1><p class=\"size\">%s</p>"
      "<a class=\"button\" href=\"?download=1\" download=\"%s\">Download</a>"
      "<p class=\"note\">Sent with ferry. The file streams straight from the sender, so this "
      "link may work only once: keep the download running until it ends.</p>",
      name, size, name);
  g_free(size);
}

/* A folder: the button asks for a zip made on the fly from the uploaded
 * tar (what every system opens with a double click); the tar itself is a
 * second, smaller link. */
static void
render_folder(GString *p, const FerryRelayPage *info, const char *name)
{
  char *size = size_text(info->size);
  char *zip = with_suffix(info->name, ".zip");
  char *tar = with_suffix(info->name, ".tar");
  char *zip_attr = g_markup_escape_text(zip, -1);
  char *tar_attr = g_markup_escape_text(tar, -1);
  g_string_append_printf(
      p,
      "<h1>%s</h1><p class=\"size\">%s</p>"
      "<a class=\"button\" href=\"?download=1&amp;format=zip\" download=\"%s\">"
      "Download .zip</a>"
      "<p class=\"alt\"><a href=\"?download=1\" download=\"%s\">or download it as a .tar "
      "archive</a></p>"
      "<p class=\"note\">Sent with ferry. The folder streams straight from the sender, so this "
      "link may work only once: keep the download running until it ends.</p>",
      name, size, zip_attr, tar_attr);
  g_free(size);
  g_free(zip);
  g_free(tar);
  g_free(zip_attr);
  g_free(tar_attr);
}

/* An encrypted upload: the size the plaintext will have (computed from the
 * ciphertext's), and what the script needs in data-* attributes. The
 * button stays hidden until the script has a key; without JavaScript the
 * page says what else works. */
static void
render_encrypted(GString *p, const FerryRelayPage *info, const char *name)
{
  guint64 plain = 0;
  gboolean valid = info->size < 0 || ferry_link_plain_size((guint64)info->size, &plain);
  gint64 plain_size = info->size >= 0 && valid ? (gint64)plain : -1;
  char *size = valid ? size_text(plain_size)
                     : g_strdup("its size fits no encrypted upload: it cannot be decrypted");
  char *save = info->folder ? with_suffix(info->name, ".tar") : g_strdup(info->name);
  char *save_attr = g_markup_escape_text(save, -1);
  const char *what = info->folder ? "folder" : "file";
  g_string_append_printf(
      p,
      "<h1>%s</h1><p class=\"size\">%s</p>"
      "<div id=\"relay\" data-save=\"%s\" data-mime=\"%s\" data-plain=\"%" G_GINT64_FORMAT "\" "
      "data-valid=\"%d\">"
      "<noscript><p class=\"problem\">Decrypting this %s needs JavaScript: allow it for this "
      "page, or run <code>ferry receive</code> with the whole link in a terminal.</p></noscript>"
      "<button class=\"button\" id=\"go\" type=\"button\" hidden disabled>"
      "Decrypt and download</button>"
      "<progress id=\"bar\" max=\"1\" hidden aria-label=\"Decrypting\"></progress>"
      "<p id=\"status\" class=\"status\" role=\"status\" aria-live=\"polite\"></p>"
      "<p id=\"problem\" class=\"problem\" role=\"alert\" hidden></p></div>"
      "<p class=\"note\">End-to-end encrypted. The key is the part of the link after #, which "
      "your browser never sends to the server: this page decrypts the %s on your device and "
      "checks every byte%s. In a terminal, <code>ferry receive</code> with the whole link does "
      "the same.</p>",
      name, size, save_attr, info->folder ? "application/x-tar" : "application/octet-stream",
      plain_size, valid, what, what, info->folder ? " (it is saved as a .tar archive)" : "");
  g_free(size);
  g_free(save);
  g_free(save_attr);
}

/* The page a browser sees: what is offered, with a button to fetch it.
 * Everything is inline; a file or folder page has no script and works as
 * plain links. */
char *
ferry_relay_page_render(const FerryRelayPage *info, const char **csp)
{
  char *name = g_markup_escape_text(info->name, -1);
  const char *kind = info->encrypted ? (info->folder ? "Encrypted folder" : "Encrypted file")
                     : info->folder  ? "Folder"
                                     : "File";
  const char *icon = info->encrypted ? icon_lock : info->folder ? icon_folder : icon_file;
  GString *p = g_string_new(NULL);
  g_string_append_printf(p,
                         "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                         "<meta name=\"referrer\" content=\"no-referrer\">"
                         "<meta name=\"robots\" content=\"noindex\">"
                         "<title>%s — ferry</title><style>%s</style></head>\n"
                         "<body><main><div class=\"icon\"><svg viewBox=\"0 0 24 24\" "
                         "aria-hidden=\"true\">%s</svg></div><p class=\"kind\">%s</p>",
                         name, page_style, icon, kind);
  if (info->encrypted)
    render_encrypted(p, info, name);
  else if (info->folder)
    render_folder(p, info, name);
  else
    render_file(p, info, name);
  g_string_append(p, "</main>");
  if (info->encrypted)
    g_string_append_printf(p, "<script>%s</script>", assets()->page_script);
  g_string_append(p, "</body></html>\n");
  *csp = info->encrypted ? assets()->csp_script : assets()->csp_plain;
  g_free(name);
  return g_string_free(p, FALSE);
}

/* The worker is the same for every link; the page registers it with scope
 * /r/, which a script at / may claim without Service-Worker-Allowed. */
void
ferry_relay_page_worker_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                                GHashTable *query, gpointer user_data)
{
  (void)soup;
  (void)path;
  (void)query;
  (void)user_data;
  const char *method = soup_server_message_get_method(msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char text[] = "/relay-sw.js is a script to read with GET (the service worker "
                               "of encrypted relay links); nothing can be sent to it\n";
    soup_message_headers_replace(h, "Allow", "GET, HEAD");
    soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
    soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_STATIC, text,
                                     sizeof text - 1);
    return;
  }
  soup_message_headers_replace(h, "Cache-Control", "no-cache");
  soup_message_headers_replace(h, "Content-Security-Policy",
                               "default-src 'none'; connect-src 'self'");
  soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  const char *script = assets()->worker_script;
  soup_server_message_set_response(msg, "text/javascript; charset=utf-8", SOUP_MEMORY_STATIC,
                                   script, strlen(script));
}
