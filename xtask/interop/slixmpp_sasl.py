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
import sys

from interop_common import Report, use_starttls
from slixmpp import ClientXMPP


class Login(ClientXMPP):
    def __init__(self, args, password):
        super().__init__(args.jid + "/sasl", password, sasl_mech=args.mech)
        use_starttls(self, args.cafile, args.insecure)
        self.result = asyncio.get_event_loop().create_future()
        self.used = None
        self.add_event_handler("session_start", lambda _: self.finish(True))
        for ev in ("failed_all_auth", "connection_failed", "disconnected"):
            self.add_event_handler(ev, lambda *_: self.finish(False))

    def finish(self, ok):
        if not self.result.done():
            self.result.set_result(ok)


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
    report = Report()
    r = await attempt(args, args.password)
    report.check(f"{args.mech} login", r is True, "" if r else f"result {r}")
    r = await attempt(args, args.password + "-wrong")
    report.check(f"{args.mech} wrong password refused", r is False, f"result {r}")
    return 0 if report.all_passed() else 1


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
