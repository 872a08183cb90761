#!/usr/bin/env python3
"""XEP-0223 (private data via PEP) interop check driven by slixmpp's stock plugins.

Two sessions of one account, "balcony" and "chamber" (XEP-0223 listings 1-2):

  1. both log in over STARTTLS + SCRAM; chamber is available and shows
     interest in the node (XEP-0163 +notify, advertised through XEP-0115 caps)
  2. disco#info on the account's bare JID: identity pubsub/pep and the
     publish-options feature (listings 5-6)
  3. balcony stores a payload with the stock xep_0223 plugin (publish with
     publish-options persist_items=true, access_model=whitelist)
  4. chamber receives the event notification from the bare JID
  5. chamber retrieves the item with the stock plugin and compares
  6. publishing to that node with conflicting options (access_model=open)
     fails with conflict + precondition-not-met

Prints one line per check and exits 0 only when every check passed.
Run by `cargo xtask interop`; usable by hand:

  python3 slixmpp_pep.py --host 127.0.0.1 --port 5222 \
      --jid alice@localhost --password pw --insecure
"""

import asyncio
import uuid

from interop_common import base_parser, finish, parse_args, run_sessions, use_starttls
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0060.stanza import EventItem, Item
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

NODE = "urn:elsinore:interop:private"
PAYLOAD_NS = "urn:elsinore:interop:private"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SCRAM_MECHS = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"}


class Secret(ElementBase):
    """The private payload, registered for items and event items."""

    name = "secret"
    namespace = PAYLOAD_NS
    plugin_attrib = "secret"
    interfaces = {"value"}
    sub_interfaces = interfaces


register_stanza_plugin(Item, Secret)
register_stanza_plugin(EventItem, Secret)




def error_conditions(iq):
    """(defined condition, pubsub#errors condition) of an error iq, from the raw XML."""
    err = iq.xml.find("{jabber:client}error")
    if err is None:
        return None, None
    cond = app = None
    for child in err:
        ns, _, name = child.tag[1:].partition("}")
        if ns == STANZAS_NS and name != "text":
            cond = name
        elif ns == PUBSUB_ERRORS:
            app = name
    return cond, app


class Session(ClientXMPP):
    def __init__(self, args, resource):
        super().__init__(
            f"{args.jid}/{resource}",
            args.password,
            plugin_config={"feature_mechanisms": {"use_mechs": set(SCRAM_MECHS)}},
        )
        use_starttls(self, args.cafile, True)
        for p in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0223"):
            self.register_plugin(p)
        self.mech_used = None
        self.started = asyncio.get_event_loop().create_future()
        self.events = asyncio.Queue()
        self.add_event_handler("auth_success", self.on_auth)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("pubsub_publish", self.on_publish)
        for ev in ("failed_all_auth", "no_auth", "connection_failed"):
            self.add_event_handler(ev, self.on_fail)

    def on_auth(self, *_):
        mech = self.plugin["feature_mechanisms"].mech
        self.mech_used = mech.name if mech is not None else None

    def on_fail(self, *_):
        if not self.started.done():
            self.started.set_result(False)

    async def on_start(self, _):
        if not self.started.done():
            self.started.set_result(True)

    def on_publish(self, msg):
        self.events.put_nowait(msg)

    def tls_in_use(self):
        t = self.transport
        return t is not None and t.get_extra_info("ssl_object") is not None


async def login(args, resource, report, interest):
    s = Session(args, resource)
    if interest:
        # +notify before the first presence, so its caps hash carries it.
        s.plugin["xep_0163"].add_interest(NODE)
    s.connect(host=args.host, port=args.port)
    try:
        ok = await asyncio.wait_for(s.started, args.timeout)
    except asyncio.TimeoutError:
        ok = False
    ok = ok and s.tls_in_use() and s.mech_used in SCRAM_MECHS
    report.check(f"login {resource} (STARTTLS + SCRAM)", ok, f"mechanism={s.mech_used}")
    if ok:
        s.send_presence()
        await s.plugin["xep_0115"].update_caps()
    return s if ok else None


async def run(args, report):
    t = args.timeout
    chamber = await login(args, "chamber", report, interest=True)
    balcony = await login(args, "balcony", report, interest=False)
    if chamber is None or balcony is None:
        return [s for s in (chamber, balcony) if s is not None]
    # Give the server time to learn chamber's caps (Prosody asks it for disco#info).
    await asyncio.sleep(1.0)

    # Listings 5-6: support on the account's bare JID.
    try:
        info = await balcony.plugin["xep_0030"].get_info(jid=args.jid, timeout=t)
        q = info["disco_info"]
        identities = {(i[0], i[1]) for i in q["identities"]}
        features = set(q["features"])
        ok = ("pubsub", "pep") in identities and "http://jabber.org/protocol/pubsub#publish-options" in features
        report.check("disco#info: pubsub/pep + publish-options", ok, f"identities={sorted(identities)}")
    except (IqError, IqTimeout) as e:
        report.check("disco#info: pubsub/pep + publish-options", False, repr(e))

    # Listing 1 / 4: store with the stock plugin (its publish options: persist + whitelist).
    value = f"G10b3-{uuid.uuid4().hex[:8]}"
    payload = Secret()
    payload["value"] = value
    try:
        await balcony.plugin["xep_0223"].store(payload, node=NODE, id="current", timeout=t)
        report.check("xep_0223 store (publish-options)", True, "type=result")
    except (IqError, IqTimeout) as e:
        detail = repr(e) if isinstance(e, IqTimeout) else "error %s/%s" % error_conditions(e.iq)
        report.check("xep_0223 store (publish-options)", False, detail)
        return [chamber, balcony]

    # Listing 2: the notification reaches the other resource.
    got = None
    try:
        while got is None:
            msg = await asyncio.wait_for(chamber.events.get(), t)
            items = msg["pubsub_event"]["items"]
            if items["node"] == NODE:
                got = msg
    except asyncio.TimeoutError:
        pass
    if got is None:
        report.check("notification to second resource", False, "none within timeout")
    else:
        item = got["pubsub_event"]["items"]["item"]
        ok = str(got["from"]) == args.jid and item["id"] == "current" and item["secret"]["value"] == value
        report.check("notification to second resource", ok, f"from={got['from']} id={item['id']}")

    # Retrieve with the stock plugin.
    try:
        res = await chamber.plugin["xep_0223"].retrieve(NODE, timeout=t)
        items = list(res["pubsub"]["items"])
        values = [(i["id"], i["secret"]["value"]) for i in items]
        report.check("xep_0223 retrieve", ("current", value) in values, f"items={values}")
    except (IqError, IqTimeout) as e:
        detail = repr(e) if isinstance(e, IqTimeout) else "error %s/%s" % error_conditions(e.iq)
        report.check("xep_0223 retrieve", False, detail)

    # Conflicting publish options on the existing whitelist node.
    form = balcony.plugin["xep_0004"].stanza.Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value="open")
    other = Secret()
    other["value"] = "leak"
    try:
        await balcony.plugin["xep_0060"].publish(None, NODE, id="current", payload=other, options=form, timeout=t)
        report.check("conflicting publish-options refused", False, "publish succeeded")
    except IqError as e:
        cond, app = error_conditions(e.iq)
        report.check(
            "conflicting publish-options refused",
            cond == "conflict" and app == "precondition-not-met",
            f"condition={cond} app={app}",
        )
    except IqTimeout:
        report.check("conflicting publish-options refused", False, "timeout")
    return [chamber, balcony]


def main():
    args = parse_args(base_parser(__doc__, jid_help="bare JID of the account"))
    finish(asyncio.run(run_sessions(run, args)))


if __name__ == "__main__":
    main()
