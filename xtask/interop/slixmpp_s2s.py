"""Federation check: a user on server A sends a chat message to a user on server B
(over server-to-server) and waits for it. Exit 0 when it arrives.

usage: slixmpp_s2s.py FROM_JID FROM_HOST:PORT TO_JID TO_HOST:PORT PASSWORD
Certificates are not checked (self-signed test servers)."""
import asyncio
import ssl
import sys

import slixmpp

got = asyncio.Event()


class C(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("message", self.on_msg)

    def on_msg(self, m):
        print("received", m["from"], m["body"])
        got.set()


async def main(a_jid, a_addr, b_jid, b_addr, password):
    a, b = C(a_jid, password), C(b_jid, password)
    for c, addr in ((a, a_addr), (b, b_addr)):
        host, port = addr.rsplit(":", 1)
        c.connect(host=host, port=int(port))
    await asyncio.wait_for(
        asyncio.gather(a.wait_until("session_start"), b.wait_until("session_start")), 20
    )
    a.send_message(mto=b_jid, mbody="over s2s", mtype="chat")
    await asyncio.wait_for(got.wait(), 30)
    print("OK")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
