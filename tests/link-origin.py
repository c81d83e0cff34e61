#!/usr/bin/python3
"""A stand-in for the relay's download side, for tests/test-link.sh: serves
one file at /r/NAME with the headers ferry serve sends, honours
`Range: bytes=N-` with 206, and can misbehave on purpose:
  --cut N      the first response stops after N bytes (the connection closes)
  --flip N     byte N of the body is flipped in every response
Every request's Range header (or "-") is appended to LOG, one per line.
Usage: link-origin.py FILE NAME LOG [--cut N] [--flip N] [--type T] [--kind K]
Prints the port, then serves until killed."""
import argparse, http.server, socketserver

ap = argparse.ArgumentParser()
ap.add_argument('file'); ap.add_argument('name'); ap.add_argument('log')
ap.add_argument('--cut', type=int, default=-1)
ap.add_argument('--flip', type=int, default=-1)
ap.add_argument('--type', default='application/octet-stream')
ap.add_argument('--kind', default='')
a = ap.parse_args()
data = bytearray(open(a.file, 'rb').read())
if a.flip >= 0:
    data[a.flip] ^= 0x01
served = [0]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *args): pass
    def do_GET(self):
        with open(a.log, 'a') as log:
            log.write((self.headers.get('Range') or '-') + '\n')
        if self.path.split('?')[0] != '/r/' + a.name:
            body = b'no upload is waiting at this name\n'
            self.send_response(404); self.send_header('Content-Length', str(len(body)))
            self.end_headers(); self.wfile.write(body); return
        start = 0
        rng = self.headers.get('Range')
        if rng and rng.startswith('bytes=') and rng.endswith('-'):
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header('Content-Type', a.type)
        if a.kind:
            self.send_header('X-Ferry-Kind', a.kind)
        self.send_header('Content-Disposition', 'attachment; filename="%s"' % a.name)
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = bytes(data[start:])
        served[0] += 1
        if served[0] == 1 and a.cut >= 0:
            self.wfile.write(body[:a.cut]); self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
