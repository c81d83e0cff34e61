#!/usr/bin/python3
"""`ferry serve` as a client meets it: protocol v1 round trips, every
guardrail tripping and recovering, malformed input, /health, /metrics and
SIGTERM. Starts real `ferry serve` processes on loopback; speaks TAP."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import struct
import sys
import time
import urllib.error
import urllib.request

import websockets

FERRY = os.environ["FERRY_EXE"]
results = []


class Server:
    def __init__(self, *args):
        self.args = args
        self.proc = subprocess.Popen(
            [FERRY, "serve", "--listen", "127.0.0.1:0", "--stun-port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"\(port (\d+)\)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("ferry serve did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(m.group(1))
        self.url = "ws://127.0.0.1:%d/v1" % self.port

    def stop(self):
        """SIGTERM, and the server must exit 0: under the sanitizers a leak
        or any error report at exit makes that fail."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            err = self.proc.stderr.read()
            check("ferry serve %s stops cleanly on SIGTERM (exit 0, nothing leaked)" % " ".join(self.args),
                  rc == 0 and "Sanitizer" not in err, "rc=%s\n%s" % (rc, err[-3000:]))
        self.proc.wait()

    def http(self, path, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


async def connect(server, headers=None):
    ws = await websockets.connect(server.url, extra_headers=headers or {}, ping_interval=None)
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["version"] == 1, welcome
    return ws


async def recv(ws, timeout=5):
    """The next message; a session envelope's "seq" is checked to count up
    by one and moved to ws.last_seq, so tests compare the rest."""
    m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    if "seq" in m:
        seq = m.pop("seq")
        prev = getattr(ws, "last_seq", 0)
        if seq != prev + 1:
            results.append((False, "seq counts up by one", "got %s after %s" % (seq, prev)))
        ws.last_seq = seq
    return m


async def send(ws, **msg):
    await ws.send(json.dumps(msg))


async def claim(ws, **extra):
    await send(ws, type="claim", version=1, **extra)
    return await recv(ws)


async def join(ws, nameplate):
    await send(ws, type="join", version=1, nameplate=nameplate)
    return await recv(ws)


def check(name, cond, diag=""):
    results.append((bool(cond), name, diag))


async def expect_error(ws, code, name):
    m = await recv(ws)
    check(name, m.get("type") == "error" and m.get("code") == code and len(m.get("message", "")) > 10,
          repr(m))
    return m


def stun_answers(port):
    """A Binding request (RFC 8489, no attributes) to 127.0.0.1:port gets
    a Binding success response with our transaction ID."""
    txid = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid, ("127.0.0.1", port))
        try:
            data = s.recv(512)
        except OSError:
            return False
    return len(data) >= 20 and struct.unpack("!H", data[:2])[0] == 0x0101 and data[8:20] == txid


async def test_round_trip(srv):
    s = await connect(srv)
    c = await claim(s)
    check("claim gives nameplate 1 and peer s", c["type"] == "claimed" and c["nameplate"] == "1"
          and c["peer"] == "s", repr(c))
    stun = [u for srv_ in c["ice_servers"] for u in srv_["urls"] if u.startswith("stun:127.0.0.1:")]
    check("claim hands out the STUN responder on two ports (NAT mapping tests)",
          len(stun) == 2 and len(set(stun)) == 2, repr(c))
    for u in stun:
        check("the STUN responder answers a Binding request on " + u, stun_answers(int(u.rsplit(":", 1)[1])))
    r = await connect(srv)
    j = await join(r, "1")
    check("join answers joined as r1 with its own resume token",
          j.get("type") == "joined" and j.get("peer") == "r1" and len(j.get("token", "")) == 32
          and j["token"] != c["token"], repr(j))
    pj = await recv(s)
    check("sender hears peer-joined r1", pj == {"type": "peer-joined", "peer": "r1"}, repr(pj))

    body = {"pake": "AQID", "nested": [1, 2, {"x": "ü"}]}
    await send(r, type="send", to="s", body=body, **{"from": "s"})
    m = await recv(s)
    check("message reaches the sender with the server-assigned from",
          m == {"type": "message", "from": "r1", "body": body}, repr(m))
    await send(s, type="send", to="*", body="hello all")
    m = await recv(r)
    check("broadcast reaches the receiver", m == {"type": "message", "from": "s", "body": "hello all"}, repr(m))

    r2 = await connect(srv)
    j2 = await join(r2, "1")
    check("second receiver is r2", j2.get("peer") == "r2", repr(j2))
    await recv(s)  # peer-joined r2
    await send(s, type="send", to="r2", body=7)
    m = await recv(r2)
    check("unicast reaches only its target", m == {"type": "message", "from": "s", "body": 7}, repr(m))
    await send(r, type="ping")
    m = await recv(r)
    check("r1 got nothing of the unicast (next message is pong)", m.get("type") == "pong", repr(m))

    s2 = await connect(srv)
    c2 = await claim(s2)
    check("a second sender gets nameplate 2", c2.get("nameplate") == "2", repr(c2))

    await r2.close()
    m = await recv(s)
    check("sender hears peer-left when a receiver disconnects",
          m.get("type") == "peer-left" and m.get("peer") == "r2", repr(m))
    m = await recv(r)
    check("other receivers hear peer-left too", m.get("type") == "peer-left" and m.get("peer") == "r2", repr(m))
    await s.close()
    m = await recv(r)
    check("receiver hears session-ended when the sender disconnects",
          m.get("type") == "session-ended" and "sender" in m.get("reason", ""), repr(m))

    s3 = await connect(srv)
    c3 = await claim(s3)
    check("a released nameplate is reused (lowest free)", c3.get("nameplate") == "1", repr(c3))
    await send(s3, type="release")
    m = await recv(s3)
    check("release is acknowledged", m == {"type": "released"}, repr(m))
    r3 = await connect(srv)
    await send(r3, type="join", version=1, nameplate="1")
    await expect_error(r3, "no-such-nameplate", "a released nameplate cannot be joined")
    for w in (r, s2, s3, r3):
        await w.close()


async def test_resume(srv):
    s = await connect(srv)
    c = await claim(s)
    check("claimed carries a resume token and the grace period",
          len(c.get("token", "")) == 32 and c.get("reconnect_grace") == 2, repr(c))
    r = await connect(srv)
    j = await join(r, c["nameplate"])
    await recv(s)  # peer-joined
    r.transport.abort()  # the network blinks: no close frame
    await asyncio.sleep(0.3)
    await send(s, type="send", to="r1", body="while you were away")
    await send(s, type="send", to="*", body="to all")
    r2 = await connect(srv)
    await send(r2, type="resume", version=1, token=j["token"], last_seq=0)
    m = await recv(r2)
    check("resume with the token gives the old peer id back",
          m.get("type") == "resumed" and m.get("peer") == "r1" and m.get("missed") == 2
          and m.get("received") == 0 and m.get("lost") is False, repr(m))
    got = [await recv(r2), await recv(r2)]
    check("messages sent while away arrive after resume, in order",
          [g.get("body") for g in got] == ["while you were away", "to all"], repr(got))
    await send(r2, type="send", to="s", body="back")
    m = await recv(s)
    check("the sender never saw the receiver leave", m == {"type": "message", "from": "r1", "body": "back"}, repr(m))
    await send(r2, type="ping", ack=2)
    m = await recv(r2)
    check("a member's pong says how many session messages the server received",
          m == {"type": "pong", "received": 1}, repr(m))
    # resuming again after acking: nothing is replayed, numbering goes on
    r2.transport.abort()
    await asyncio.sleep(0.3)
    await send(s, type="send", to="r1", body="third")
    r2b = await connect(srv)
    await send(r2b, type="resume", version=1, token=j["token"], last_seq=2)
    m = await recv(r2b)
    check("a second resume replays only what was not acknowledged", m.get("missed") == 1 and m.get("received") == 1, repr(m))
    r2b.last_seq = 2
    m = await recv(r2b)
    check("…which is the next message, numbered 3", m.get("body") == "third" and r2b.last_seq == 3, repr(m))
    r2 = r2b
    r3 = await connect(srv)
    await send(r3, type="resume", version=1, token=j["token"])
    await expect_error(r3, "no-such-session", "a token cannot be used while its owner is connected")
    await send(r3, type="resume", version=1, token="zz")
    await expect_error(r3, "bad-field", "a malformed token gets bad-field")
    r2.transport.abort()
    m = await recv(s, timeout=6)
    check("after the grace period the others hear peer-left", m.get("type") == "peer-left" and m.get("peer") == "r1", repr(m))
    await send(r3, type="resume", version=1, token=j["token"])
    await expect_error(r3, "no-such-session", "an expired token gets no-such-session")
    s.transport.abort()
    await asyncio.sleep(0.2)
    s2 = await connect(srv)
    await send(s2, type="resume", version=1, token=c["token"])
    m = await recv(s2)
    check("a sender can resume too, nameplate intact", m.get("type") == "resumed" and m.get("nameplate") == c["nameplate"], repr(m))
    for w in (s2, r3):
        await w.close()


async def test_bad_input(srv):
    ws = await connect(srv)
    await ws.send("{not json")
    await expect_error(ws, "bad-json", "malformed JSON gets bad-json")
    await ws.send("[1,2]")
    await expect_error(ws, "bad-json", "a non-object gets bad-json")
    await ws.send("[" * 1000 + "]" * 1000)
    await expect_error(ws, "bad-json", "deep nesting gets bad-json")
    await ws.send(b"\x00\x01binary")
    await expect_error(ws, "bad-json", "a binary frame is refused")
    await send(ws, type="teleport")
    await expect_error(ws, "unknown-type", "an unknown type gets unknown-type")
    await send(ws, type=5)
    await expect_error(ws, "bad-field", "a non-string type gets bad-field")
    await send(ws, type="claim", version=2)
    await expect_error(ws, "bad-version", "an unknown protocol version gets bad-version")
    await send(ws, type="claim")
    await expect_error(ws, "bad-field", "claim without version gets bad-field")
    await send(ws, type="join", version=1, nameplate="07")
    await expect_error(ws, "bad-field", "a nameplate with a leading zero gets bad-field")
    await send(ws, type="join", version=1, nameplate="99999")
    m = await expect_error(ws, "no-such-nameplate", "an unknown nameplate gets no-such-nameplate")
    check("no-such-nameplate says what to do", "ask the sender" in m["message"], repr(m))
    await send(ws, type="send", to="s", body=1)
    await expect_error(ws, "out-of-order", "send before claim/join gets out-of-order")
    await send(ws, type="leave")
    await expect_error(ws, "out-of-order", "leave outside a session gets out-of-order")
    await send(ws, type="send", to="../x", body=1)
    await expect_error(ws, "bad-field", "a bad peer id gets bad-field")
    await ws.send(json.dumps({"type": "send", "to": "s", "body": "x" * 3000}))
    m = await expect_error(ws, "too-large", "a frame over --max-message-bytes gets too-large")
    check("too-large names the limit", "2048" in m["message"], repr(m))
    await send(ws, type="ping")
    check("the connection survives all of that", await recv(ws) == {"type": "pong"})
    c = await claim(ws)
    await send(ws, type="claim", version=1)
    await expect_error(ws, "out-of-order", "a second claim on one connection gets out-of-order")
    await send(ws, type="send", to="s", body=1)
    await expect_error(ws, "bad-field", "sending to yourself gets bad-field")
    await ws.close()

    big = await connect(srv)
    await big.send(json.dumps({"type": "send", "to": "s", "body": "x" * 9000}))
    try:
        await asyncio.wait_for(big.recv(), 5)
        check("a frame over 4x --max-message-bytes closes the connection with 1009", False)
    except websockets.exceptions.ConnectionClosed as e:
        check("a frame over 4x --max-message-bytes closes the connection with 1009", e.code == 1009, repr(e))

    st, body = srv.http("/metrics")
    check("/metrics counts refusals by reason", st == 200 and 'ferry_refusals_total{reason="bad-json"} 4' in body
          and 'ferry_refusals_total{reason="too-large"} 1' in body, body[-800:])


async def test_limits(srv):
    # --max-receivers-per-sender 2 and a claim asking for 1
    s = await connect(srv)
    c = await claim(s, max_receivers=1)
    r1, r2 = await connect(srv), await connect(srv)
    check("first receiver joins", (await join(r1, c["nameplate"])).get("type") == "joined")
    await send(r2, type="join", version=1, nameplate=c["nameplate"])
    m = await expect_error(r2, "session-full", "a join over the sender's receiver limit gets session-full")
    check("session-full names the limit and the way out", "(1)" in m["message"] and "--max-receivers" in m["message"], repr(m))
    await r1.close()
    await recv(s)  # peer-left
    check("after a receiver leaves, its slot is free again",
          (await join(r2, c["nameplate"])).get("type") == "joined")
    # --max-sessions 2
    s2 = await connect(srv)
    await claim(s2)
    s3 = await connect(srv)
    await send(s3, type="claim", version=1)
    await expect_error(s3, "too-many-sessions", "a claim over --max-sessions is refused")
    await send(s2, type="leave")
    check("leave is acknowledged", (await recv(s2)) == {"type": "left"})
    c3 = await claim(s3)
    check("after a session ends, a new claim succeeds", c3.get("type") == "claimed", repr(c3))
    # message rate: 10/s with a burst of 20
    await asyncio.gather(*(send(s2, type="ping") for _ in range(40)))
    got = [await recv(s2) for _ in range(40)]
    limited = sum(1 for m in got if m.get("code") == "rate-limited")
    check("a message flood is rate-limited", limited >= 10, "limited=%d" % limited)
    await asyncio.sleep(1.2)
    await send(s2, type="ping")
    check("after a pause messages flow again", await recv(s2) == {"type": "pong"})
    for w in (s, r2, s2, s3):
        await w.close()


async def test_connect_limits():
    srv = Server("--ip-connect-rate", "30", "--max-connections", "40", "--ip-session-rate", "60")
    try:
        conns = [await connect(srv) for _ in range(30)]
        try:
            await websockets.connect(srv.url)
            check("the 31st connection in a burst is refused", False)
        except websockets.exceptions.InvalidStatusCode as e:
            check("the 31st connection in a burst is refused with 429", e.status_code == 429, repr(e))
        await asyncio.sleep(2.2)
        try:
            extra = await connect(srv)
            check("after 2 s one more connection is allowed (30/min refill)", True)
            conns.append(extra)
        except Exception as e:
            check("after 2 s one more connection is allowed (30/min refill)", False, repr(e))
        # a different client address (via a trusted proxy header would be needed; here: not trusted)
        try:
            await websockets.connect(srv.url, extra_headers={"X-Forwarded-For": "203.0.113.9"})
            check("X-Forwarded-For is ignored without --trust-proxy", False)
        except websockets.exceptions.InvalidStatusCode as e:
            check("X-Forwarded-For is ignored without --trust-proxy", e.status_code == 429)
        st, body = srv.http("/metrics")
        check("/metrics counts rate-limited connections",
              re.search(r'ferry_refusals_total\{reason="rate-limited"\} [2-9]', body) is not None, body[-600:])
        for w in conns:
            await w.close()
    finally:
        srv.stop()

    srv = Server("--trust-proxy", "--ip-connect-rate", "2", "--max-connections", "3")
    try:
        a = await connect(srv, {"X-Forwarded-For": "198.51.100.1"})
        b = await connect(srv, {"X-Forwarded-For": "198.51.100.1"})
        try:
            await websockets.connect(srv.url, extra_headers={"X-Forwarded-For": "198.51.100.1"})
            check("with --trust-proxy the forwarded address is rate-limited", False)
        except websockets.exceptions.InvalidStatusCode as e:
            check("with --trust-proxy the forwarded address is rate-limited", e.status_code == 429)
        c = await connect(srv, {"X-Forwarded-For": "10.0.0.1, 198.51.100.2"})
        check("with --trust-proxy another forwarded address is allowed", True)
        try:
            await websockets.connect(srv.url, extra_headers={"X-Forwarded-For": "198.51.100.3"})
            check("a connection over --max-connections is refused with 503", False)
        except websockets.exceptions.InvalidStatusCode as e:
            check("a connection over --max-connections is refused with 503", e.status_code == 503)
        await c.close()
        await asyncio.sleep(0.2)
        d = await connect(srv, {"X-Forwarded-For": "198.51.100.4"})
        check("after one closes, a new connection is accepted", True)
        for w in (a, b, d):
            await w.close()
    finally:
        srv.stop()


async def test_per_address_limits():
    srv = Server("--max-connections-per-ip", "3", "--ip-join-rate", "5")
    try:
        held = [await connect(srv) for _ in range(3)]
        try:
            await websockets.connect(srv.url)
            check("a 4th connection from one address (--max-connections-per-ip 3) is refused", False)
        except websockets.exceptions.InvalidStatusCode as e:
            check("a 4th connection from one address (--max-connections-per-ip 3) is refused with 429",
                  e.status_code == 429 and "already holds 3 connections" in e.headers.get("X-Ferry-Error", ""),
                  repr(dict(e.headers)))
        await held[0].close()
        await asyncio.sleep(0.2)
        held[0] = await connect(srv)
        check("after one closes, the address may connect again", True)
        ws = held[1]
        await send(ws, type="join", version=1, nameplate="4242")
        await expect_error(ws, "no-such-nameplate", "guessing a nameplate fails")
        await send(ws, type="join", version=1, nameplate="4243")
        await expect_error(ws, "rate-limited",
                           "a second guess right after is refused (a failed join costs 5 of --ip-join-rate 5)")
        await ws.send('{"type":"ping","x":\'"\',"b":[[[]]],"y":\'"\'}')
        await expect_error(ws, "bad-json", "single-quoted strings (which could hide nesting) get bad-json")
        await ws.send('{"type":"ping" /* comment */}')
        await expect_error(ws, "bad-json", "comments get bad-json")
        for w in held:
            await w.close()
    finally:
        srv.stop()
    p = subprocess.run([FERRY, "serve", "--max-message-bytes", "2000000"], capture_output=True, text=True)
    check("--max-message-bytes over 1 MiB is refused with the range", p.returncode == 2 and "1048576" in p.stderr, p.stderr)


async def test_session_rate():
    srv = Server("--ip-session-rate", "30")
    try:
        ws = []
        for i in range(30):
            w = await connect(srv)
            c = await claim(w)
            ws.append(w)
        w = await connect(srv)
        await send(w, type="claim", version=1)
        await expect_error(w, "rate-limited", "a 31st claim in a burst (--ip-session-rate 30) is refused")
        await asyncio.sleep(2.2)
        c = await claim(w)
        check("after 2 s (30/min refill) a claim succeeds again", c.get("type") == "claimed", repr(c))
        for x in ws + [w]:
            await x.close()
    finally:
        srv.stop()


async def test_timeouts():
    srv = Server("--idle-timeout", "2", "--code-ttl", "2", "--session-ttl", "4")
    try:
        quiet = await connect(srv)
        live = await connect(srv)
        m = await recv(live, timeout=3)
        check("the server pings a quiet client", m == {"type": "ping"}, repr(m))
        await send(live, type="pong")
        m = await recv(quiet, timeout=3)
        check("server pings the other one too", m == {"type": "ping"}, repr(m))
        m = await recv(quiet, timeout=4)
        check("a client that never answers gets idle-timeout", m.get("code") == "idle-timeout", repr(m))
        try:
            await asyncio.wait_for(quiet.recv(), 3)
            check("…and is closed", False)
        except websockets.exceptions.ConnectionClosed:
            check("…and is closed", True)
        await live.close()

        s = await connect(srv)
        await claim(s)
        m = await recv(s, timeout=4)
        while m.get("type") == "ping":
            await send(s, type="pong")
            m = await recv(s, timeout=4)
        check("a code nobody joins expires with code-expired", m.get("code") == "code-expired", repr(m))
        await s.close()
    finally:
        srv.stop()

    srv = Server("--idle-timeout", "60", "--code-ttl", "1", "--session-ttl", "3")
    try:
        s = await connect(srv)
        c = await claim(s)
        r = await connect(srv)
        await join(r, c["nameplate"])
        seen_release = seen_end = False
        deadline = time.time() + 8
        while time.time() < deadline and not (seen_release and seen_end):
            try:
                m = await recv(s, timeout=1)
            except asyncio.TimeoutError:
                continue
            if m.get("type") == "ping":
                await send(s, type="pong")
            if m.get("type") == "released":
                seen_release = True
            if m.get("code") == "session-expired":
                seen_end = True
        check("a joined code is released at --code-ttl", seen_release)
        check("the session ends at --session-ttl", seen_end)
        got_end = False
        try:
            while True:
                m = await recv(r, timeout=2)
                if m.get("type") == "session-ended":
                    got_end = True
                    break
                if m.get("type") == "ping":
                    await send(r, type="pong")
        except Exception:
            pass
        check("the receiver hears session-ended at --session-ttl", got_end)
    finally:
        srv.stop()


async def test_health_and_drain():
    srv = Server("--drain-timeout", "3")
    try:
        st, body = srv.http("/health")
        check("/health answers 200 ok", st == 200 and json.loads(body)["status"] == "ok", body)
        st, body = srv.http("/metrics")
        check("/metrics has connection, session, message and STUN series",
              all(k in body for k in ("ferry_connections ", "ferry_sessions ", "ferry_messages_total",
                                      "ferry_stun_requests_total")), body[:400])
        st, body = srv.http("/nope")
        check("unknown paths are 404", st == 404)
        s = await connect(srv)
        await claim(s)
        r = await connect(srv)
        srv.proc.send_signal(signal.SIGTERM)
        m = await recv(s)
        check("SIGTERM tells clients the server is closing", m.get("type") == "closing" and m.get("retry_after"), repr(m))
        try:
            await asyncio.wait_for(s.recv(), 3)
            code = None
        except websockets.exceptions.ConnectionClosed as e:
            code = e.code
        check("…and closes them with 1001 going away", code == 1001, repr(code))
        rc = srv.proc.wait(timeout=5)
        check("ferry serve exits 0 after draining", rc == 0, "rc=%s %s" % (rc, srv.proc.stderr.read()))
    finally:
        srv.stop()


def free_port():
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


async def test_two_instances_on_redis():
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        url = "redis://127.0.0.1:%d" % port
        a = Server("--store", url, "--reconnect-grace", "0")
        b = Server("--store", url, "--reconnect-grace", "0")
        try:
            s = await connect(a)
            c = await claim(s)
            s2 = await connect(b)
            c2 = await claim(s2)
            check("two instances allocate distinct nameplates from one Redis",
                  {c.get("nameplate"), c2.get("nameplate")} == {"1", "2"}, repr((c, c2)))
            r = await connect(b)
            j = await join(r, c["nameplate"])
            check("a receiver on instance B joins a sender on instance A", j.get("type") == "joined" and j.get("peer") == "r1", repr(j))
            m = await recv(s)
            check("the sender on A hears peer-joined from B", m == {"type": "peer-joined", "peer": "r1"}, repr(m))
            await send(r, type="send", to="s", body={"pake": "B to A"})
            m = await recv(s)
            check("a message from B reaches A", m == {"type": "message", "from": "r1", "body": {"pake": "B to A"}}, repr(m))
            await send(s, type="send", to="r1", body="A to B")
            m = await recv(r)
            check("a message from A reaches B", m == {"type": "message", "from": "s", "body": "A to B"}, repr(m))
            r2 = await connect(a)
            j2 = await join(r2, c["nameplate"])
            await recv(s)
            await send(s, type="send", to="*", body="all")
            got = (await recv(r), await recv(r2))
            check("a broadcast reaches receivers on both instances",
                  all(g.get("body") == "all" for g in got) and j2.get("peer") == "r2", repr(got))
            await r.close()
            m = await recv(s)
            check("peer-left crosses instances", m.get("type") == "peer-left" and m.get("peer") == "r1", repr(m))
            m = await recv(r2)
            check("…to receivers on the other instance too", m.get("type") == "peer-left", repr(m))
            await s.close()
            m = await recv(r2)
            check("session-ended reaches a receiver on the sender's instance", m.get("type") == "session-ended", repr(m))
            s3 = await connect(b)
            c3 = await claim(s3)
            check("the ended session's nameplate is free again, across instances", c3.get("nameplate") == "1", repr(c3))
            for w in (s2, r2, s3):
                await w.close()
        finally:
            a.stop()
            b.stop()
    finally:
        redis.terminate()
        redis.wait()


async def test_cli_errors():
    p = subprocess.run([FERRY, "serve", "--listen", "nonsense"], capture_output=True, text=True)
    check("a bad --listen exits 1 and says the form", p.returncode == 1 and "HOST:PORT" in p.stderr, p.stderr)
    p = subprocess.run([FERRY, "serve", "--code-ttl", "soon"], capture_output=True, text=True)
    check("a bad duration exits 2 and shows the form", p.returncode == 2 and "10m" in p.stderr, p.stderr)
    p = subprocess.run([FERRY, "serve", "--turn-server", "turn:127.0.0.1"], capture_output=True, text=True)
    check("--turn-server without a secret says what is missing",
          p.returncode == 1 and "--turn-static-auth-secret" in p.stderr, p.stderr)
    p = subprocess.run([FERRY, "serve", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key",
                        "--listen", "127.0.0.1:0", "--no-stun"], capture_output=True, text=True)
    check("a missing certificate names the file", p.returncode == 1 and "/nonexistent.pem" in p.stderr, p.stderr)
    p = subprocess.run([FERRY, "serve", "--store", "redis://127.0.0.1:1", "--listen", "127.0.0.1:0", "--no-stun"],
                       capture_output=True, text=True, timeout=20)
    check("an unreachable Redis store exits 1 and says so", p.returncode == 1 and "Redis" in p.stderr, p.stderr)
    p = subprocess.run([FERRY, "serve", "--help"], capture_output=True, text=True)
    check("ferry serve --help lists the guardrail flags", p.returncode == 0 and all(
        f in p.stdout for f in ("--max-sessions", "--ip-connect-rate", "--idle-timeout", "--store", "--trust-proxy")))


async def main():
    srv = Server("--max-message-bytes", "2048", "--max-receivers-per-sender", "2",
                 "--max-sessions", "100", "--reconnect-grace", "2")
    try:
        await test_round_trip(srv)
        await test_resume(srv)
        await test_bad_input(srv)
    finally:
        srv.stop()
    srv = Server("--max-receivers-per-sender", "2", "--max-sessions", "2", "--message-rate", "10")
    try:
        await test_limits(srv)
    finally:
        srv.stop()
    await test_connect_limits()
    await test_session_rate()
    await test_per_address_limits()
    await test_timeouts()
    await test_health_and_drain()
    await test_two_instances_on_redis()
    await test_cli_errors()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 120))
    except Exception as e:  # a crash is a failed test, not a silent pass
        import traceback
        results.append((False, "test run completed", traceback.format_exc()))
    for i, (ok, name, diag) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        if not ok and diag:
            for line in str(diag).splitlines():
                print("# " + line)
    print("1..%d" % len(results))
    sys.exit(0 if all(ok for ok, _, _ in results) else 1)
