#!/usr/bin/env python3
"""A hostile host's TCP switch (test helper): forwards to FIRST until a file appears, then to THEN.

  tcp_switch.py --listen 127.0.0.1:PORT --first HOST:PORT --then HOST:PORT --switch-when FILE [--log FILE]

Each new connection is routed when it arrives: before FILE exists to FIRST (the genuine TD), afterwards to
THEN (another machine). Connections already open stay where they are. Runs until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import threading
import time


def _addr(text: str) -> tuple[str, int]:
    host, _unused, port = text.rpartition(":")
    return host, int(port)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--first", required=True)
    ap.add_argument("--then", required=True)
    ap.add_argument("--switch-when", required=True)
    ap.add_argument("--log")
    args = ap.parse_args()
    server = socket.create_server(_addr(args.listen), reuse_port=False)
    while True:
        client, _unused = server.accept()
        target = args.then if os.path.exists(args.switch_when) else args.first
        if args.log:
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(f"{time.time():.3f} -> {target}\n")
        try:
            upstream = socket.create_connection(_addr(target), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)  # a quiet SSH session (a long task) is not a dead one
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
