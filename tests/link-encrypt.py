#!/usr/bin/python3
"""Encrypts a file as an encrypted relay link (FLE1, docs/protocol.md
section 10.7), independently of ferry's C code, so the browser test checks
the landing page against the format rather than against ferry itself.

  link-encrypt.py INPUT OUTPUT [--key BASE64URL] [--flip OFFSET]

Writes the ciphertext to OUTPUT and prints the key as it goes after '#k='
in a link (base64url, no padding). --flip inverts the byte at OFFSET of
the ciphertext afterwards (a tampered upload)."""
import argparse
import base64
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HEADER = b"FRYLNK01"
RECORD = 65536


def sealed_size(n):
    return len(HEADER) + n + 16 * (n // RECORD + 1)


def encrypt(key, src, dst):
    aead = AESGCM(key)
    dst.write(HEADER)
    index = 0
    record = src.read(RECORD)
    while True:
        # A record is the last one when nothing follows it; a file whose
        # size is a multiple of RECORD therefore ends with an empty record.
        following = src.read(RECORD) if len(record) == RECORD else b""
        last = len(record) < RECORD
        nonce = struct.pack(">QI", index, 1 if last else 0)
        dst.write(aead.encrypt(nonce, record, HEADER))
        if last:
            return
        index += 1
        record = following


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--key", help="the key as base64url (default: 32 random bytes)")
    ap.add_argument("--flip", type=int, help="invert the ciphertext byte at this offset")
    args = ap.parse_args()
    if args.key:
        key = base64.urlsafe_b64decode(args.key + "=" * (-len(args.key) % 4))
        if len(key) != 32:
            sys.exit("link-encrypt.py: --key must be 32 bytes in base64url (43 characters)")
    else:
        key = os.urandom(32)
    with open(args.input, "rb") as src, open(args.output, "wb") as dst:
        encrypt(key, src, dst)
    size = os.path.getsize(args.output)
    if size != sealed_size(os.path.getsize(args.input)):
        sys.exit("link-encrypt.py: wrote %d bytes, not the %d FLE1 gives"
                 % (size, sealed_size(os.path.getsize(args.input))))
    if args.flip is not None:
        with open(args.output, "r+b") as f:
            f.seek(args.flip)
            byte = f.read(1)
            f.seek(args.flip)
            f.write(bytes([byte[0] ^ 0xFF]))
    print(base64.urlsafe_b64encode(key).rstrip(b"=").decode())


if __name__ == "__main__":
    main()
