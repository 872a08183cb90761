#!/usr/bin/env python3
"""slixmpp logs in with one given SASL mechanism (and only that one).

Checks: the right password logs in; a wrong one is refused. Prints [PASS]/[FAIL]
lines and exits 0 only when both held.

  python3 slixmpp_sasl.py --port 5222 --jid juliet@localhost --password pw \
      --mech DIGEST-MD5 --insecure
"""

import argparse
import asyncio
import logging
import ssl
import sys

from slixmpp import ClientXMPP


class Login(ClientXMPP):
    def __init__(self, args, password):
        super().__init__(args.jid + "/sasl", password, sasl_mech=args.mech)
        ctx = ssl.create_default_context()
        if args.cafile:
            ctx.load_verify_locations(cafile=args.cafile)
        elif args.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.ssl_context = ctx
        self.enable_direct_tls = False
        self.enable_plaintext = False
        self.result = asyncio.get_event_loop().create_future()
        self.used = None
        self.add_event_handler("session_start", lambda _: self.finish(True))
        for ev in ("failed_all_auth", "connection_failed", "disconnected"):
            self.add_event_handler(ev, lambda *_: self.finish(False))

    def finish(self, ok):
        if not self.result.done():
            self.result.set_result(ok)


def check(name, ok, detail=""):
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f" -- {detail}" if detail else ""), flush=True)
    return ok


async def attempt(args, password):
    c = Login(args, password)
    c.connect(host=args.host, port=args.port)
    try:
        return await asyncio.wait_for(c.result, args.timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        c.disconnect()
        await asyncio.sleep(0.2)


async def main_async(args):
    ok = True
    r = await attempt(args, args.password)
    ok &= check(f"{args.mech} login", r is True, "" if r else f"result {r}")
    r = await attempt(args, args.password + "-wrong")
    ok &= check(f"{args.mech} wrong password refused", r is False, f"result {r}")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mech", required=True)
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
