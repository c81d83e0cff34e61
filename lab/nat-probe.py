#!/usr/bin/env python3
"""Measures a NAT's mapping and filtering the way RFC 5780 does, so the lab can
check that each site's nftables rules make the NAT type they claim to.

  nat-probe.py serve IP1 IP2   responder in the public namespace: UDP sockets on
                               IP1:4001, IP1:4002 and IP2:4001
  nat-probe.py probe IP1 IP2   run behind a NAT; prints one line such as
                               "mapping=endpoint-independent filtering=address-dependent"

A request is JSON {"id": N, "from": "a"|"b"|"c"}: the responder answers from
socket a (IP1:4001), b (IP1:4002) or c (IP2:4001) with {"id": N, "mapped":
"IP:PORT"}, the source address it saw.
"""
import json
import select
import socket
import sys


def serve(ip1, ip2):
    socks = {}
    for name, addr in (("a", (ip1, 4001)), ("b", (ip1, 4002)), ("c", (ip2, 4001))):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(addr)
        socks[name] = s
    print("listening", flush=True)
    while True:
        ready, _, _ = select.select(list(socks.values()), [], [])
        for s in ready:
            data, peer = s.recvfrom(2048)
            try:
                req = json.loads(data)
                out = socks[req["from"]]
            except (ValueError, KeyError, TypeError):
                continue
            reply = {"id": req["id"], "mapped": "%s:%d" % peer}
            out.sendto(json.dumps(reply).encode(), peer)


class Prober:
    def __init__(self, ip1, ip2):
        self.addr = {"a": (ip1, 4001), "b": (ip1, 4002), "c": (ip2, 4001)}
        self.n = 0

    def ask(self, sock, to, reply_from):
        """Sends to server socket `to` asking for an answer from `reply_from`;
        the mapped address seen, or None when nothing came back (3 tries)."""
        self.n += 1
        req = json.dumps({"id": self.n, "from": reply_from}).encode()
        for _ in range(3):
            sock.sendto(req, self.addr[to])
            while True:
                ready, _, _ = select.select([sock], [], [], 0.4)
                if not ready:
                    break
                data, _ = sock.recvfrom(2048)
                try:
                    reply = json.loads(data)
                except ValueError:
                    continue
                if reply.get("id") == self.n:
                    return reply["mapped"]
        return None


def fresh():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    return s


def probe(ip1, ip2):
    p = Prober(ip1, ip2)
    s = fresh()
    m1 = p.ask(s, "a", "a")
    if m1 is None:
        print("udp=blocked")
        return
    m2 = p.ask(s, "c", "c")
    s.connect(p.addr["a"])
    local = "%s:%d" % s.getsockname()
    public = m1 == local
    s.close()
    mapping = "endpoint-independent" if m1 == m2 else "endpoint-dependent"
    # filtering: each test on a fresh socket, whose only outgoing packet
    # went to socket a, so the NAT has no other state for it
    if p.ask(fresh(), "a", "c") is not None:
        filtering = "endpoint-independent"
    elif p.ask(fresh(), "a", "b") is not None:
        filtering = "address-dependent"
    else:
        filtering = "address-and-port-dependent"
    print("mapping=%s filtering=%s public=%s mapped=%s,%s local=%s"
          % (mapping, filtering, "yes" if public else "no", m1, m2, local))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("serve", "probe"):
        sys.exit("usage: nat-probe.py serve|probe IP1 IP2")
    (serve if sys.argv[1] == "serve" else probe)(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
