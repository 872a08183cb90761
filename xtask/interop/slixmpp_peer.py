#!/usr/bin/env python3
"""A slixmpp peer for checks driven from another client (e.g. profanity in tmux).

Logs in, waits for a chat or normal message whose body is --expect (also when
delivered from offline storage), then answers the sender with --reply (when
given). With --expect-from, the sender's bare JID must be that one. With
--ready, "[PASS] peer logged in" is printed once the session started (for a
driver that sends only then). Prints [PASS]/[FAIL] lines and exits 0 only when
every step worked.

  python3 slixmpp_peer.py --port 5222 --jid bob@localhost --password pw \
      --expect 'hello' --reply 'hi back' --insecure
"""

import argparse
import asyncio
import logging
import sys

from interop_common import Report, use_starttls
from slixmpp import ClientXMPP


class Peer(ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid + "/peer", args.password)
        use_starttls(self, args.cafile, args.insecure)
        self.args = args
        self.started = asyncio.get_event_loop().create_future()
        self.got = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        for ev in ("failed_all_auth", "connection_failed"):
            self.add_event_handler(ev, self.on_fail)

    def on_fail(self, *_):
        if not self.started.done():
            self.started.set_exception(RuntimeError("login failed"))

    def on_start(self, _):
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"] == self.args.expect and not self.got.done():
            self.got.set_result(msg)


async def main_async(args):
    peer = Peer(args)
    peer.connect(host=args.host, port=args.port)
    report = Report()
    try:
        await asyncio.wait_for(peer.started, args.timeout)
        if args.ready:
            report.check("peer logged in", True, str(peer.boundjid))
        msg = await asyncio.wait_for(peer.got, args.timeout)
        if args.expect_from and msg["from"].bare != args.expect_from:
            report.check("peer received the message", False, f"from={msg['from']}, expected {args.expect_from}")
        else:
            report.check("peer received the message", True, f"from={msg['from']} body={msg['body']!r}")
        if args.reply is not None:
            peer.send_message(mto=msg["from"], mbody=args.reply, mtype="chat")
            await asyncio.sleep(1.0)  # let the reply leave before disconnecting
            report.check("peer sent the reply", True)
    except Exception as e:
        report.check("peer scenario", False, repr(e))
    finally:
        peer.disconnect()
    return 0 if report.all_passed() else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--expect", required=True)
    p.add_argument("--reply")
    p.add_argument("--expect-from", help="bare JID the message must come from")
    p.add_argument("--ready", action="store_true", help="print a line once logged in")
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
