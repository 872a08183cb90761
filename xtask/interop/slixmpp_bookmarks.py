#!/usr/bin/env python3
"""Bookmarks both ways (XEP-0048 over XEP-0049 and over PEP, XEP-0402), driven by
slixmpp's stock xep_0048, xep_0049, xep_0223, xep_0060 and xep_0402 plugins.

Two sessions of one account: "desk" writes, "phone" watches (it advertises
+notify for urn:xmpp:bookmarks:1 through XEP-0115 caps, as Prosody needs).

  1. disco#info on the account shows urn:xmpp:bookmarks:1#compat and #compat-pep
  2. desk stores XEP-0048 bookmarks in private XML (xep_0048, method xep_0049):
     a conference and a URL
  3. phone gets a XEP-0402 notification for the conference
  4. the conference reads back through XEP-0402 (one item, id = room JID) and
     through XEP-0048 over PEP (xep_0048, method xep_0223)
  5. desk adds a room with a XEP-0402 publish (XEP-0402 publish options); the
     private XML list shows both rooms; the URL bookmark is kept (elsinore) or
     dropped (Prosody keeps XEP-0402 only) -- --urls-kept says which to expect
  6. desk removes the first room with a XEP-0402 retract (notify): gone from
     private XML
  7. desk replaces the list through XEP-0048 over PEP (xep_0223 store): the
     XEP-0402 items follow
  8. desk stores an empty list in private XML: no XEP-0402 items are left

Prints one line per check and exits 0 only when every check passed.
Run by `cargo xtask interop`; usable by hand:

  python3 slixmpp_bookmarks.py --host 127.0.0.1 --port 5222 \
      --jid alice@localhost --password pw --insecure [--urls-kept]
"""

import asyncio

from interop_common import base_parser, finish, parse_args, run_sessions, use_starttls
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0048.stanza import Bookmarks

NATIVE = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SCRAM_MECHS = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"}
PLAY = "theplay@conference.shakespeare.lit"
COUNCIL = "council@conference.underhill.org"
GLOBE = "globe@conference.shakespeare.lit"




def condition(e):
    err = e.iq.xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        ns, _, name = child.tag[1:].partition("}")
        if ns == STANZAS_NS and name != "text":
            return name
    return None


def describe(e):
    return repr(e) if isinstance(e, IqTimeout) else f"error {condition(e)}"


class Session(ClientXMPP):
    def __init__(self, args, resource):
        super().__init__(
            f"{args.jid}/{resource}",
            args.password,
            plugin_config={"feature_mechanisms": {"use_mechs": set(SCRAM_MECHS)}},
        )
        use_starttls(self, args.cafile, True)
        for p in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163",
                  "xep_0223", "xep_0049", "xep_0048", "xep_0402"):
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        self.events = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("pubsub_publish", self.on_event)
        self.add_event_handler("pubsub_retract", self.on_event)
        for ev in ("failed_all_auth", "no_auth", "connection_failed"):
            self.add_event_handler(ev, self.on_fail)

    def on_fail(self, *_):
        if not self.started.done():
            self.started.set_result(False)

    async def on_start(self, _):
        if not self.started.done():
            self.started.set_result(True)

    def on_event(self, msg):
        self.events.put_nowait(msg)


async def login(args, resource, report, interest):
    s = Session(args, resource)
    if interest:
        s.plugin["xep_0163"].add_interest(NATIVE)
        s.plugin["xep_0163"].add_interest(LEGACY)
    s.connect(host=args.host, port=args.port)
    try:
        ok = await asyncio.wait_for(s.started, args.timeout)
    except asyncio.TimeoutError:
        ok = False
    report.check(f"login {resource}", ok)
    if ok:
        s.send_presence()
        await s.plugin["xep_0115"].update_caps()
    return s if ok else None


def native_event_ids(msg):
    """(kind, id) of every XEP-0402 item or retract in an event message."""
    out = []
    event = msg.xml.find(f"{{{PUBSUB_EVENT}}}event")
    if event is None:
        return out
    for items in event.findall(f"{{{PUBSUB_EVENT}}}items"):
        if items.get("node") != NATIVE:
            continue
        for child in items:
            kind = child.tag.rpartition("}")[2]
            out.append((kind, child.get("id")))
    return out


async def wait_native_event(session, want, timeout):
    """Wait for a XEP-0402 event (kind, id); other events are skipped."""
    try:
        while True:
            msg = await asyncio.wait_for(session.events.get(), timeout)
            if want in native_event_ids(msg):
                return True
    except asyncio.TimeoutError:
        return False


async def native_items(session, args):
    """{room JID: conference stanza} of the XEP-0402 node (absent node: empty)."""
    try:
        res = await session.plugin["xep_0060"].get_items(args.jid, NATIVE, timeout=args.timeout)
    except IqError as e:
        if condition(e) == "item-not-found":
            return {}
        raise
    return {i["id"]: i["conference"] for i in res["pubsub"]["items"]}


async def private_bookmarks(session, args):
    res = await session.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=args.timeout)
    return res["private"]["bookmarks"]


def conference_jids(storage):
    return sorted(str(c["jid"]) for c in storage["conferences"])


def publish_options(session):
    form = session.plugin["xep_0004"].stanza.Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#persist_items", value="true")
    form.add_field(var="pubsub#max_items", value="max")
    form.add_field(var="pubsub#send_last_published_item", value="never")
    form.add_field(var="pubsub#access_model", value="whitelist")
    return form


async def run(args, report):
    t = args.timeout
    phone = await login(args, "phone", report, interest=True)
    desk = await login(args, "desk", report, interest=False)
    sessions = [s for s in (phone, desk) if s is not None]
    if phone is None or desk is None:
        return sessions
    await asyncio.sleep(1.0)  # let the server learn phone's caps

    # 1. Discovery.
    info = await desk.plugin["xep_0030"].get_info(jid=args.jid, timeout=t)
    features = set(info["disco_info"]["features"])
    report.check(
        "disco#info: urn:xmpp:bookmarks:1#compat and #compat-pep",
        {NATIVE + "#compat", NATIVE + "#compat-pep"} <= features,
        f"{sorted(f for f in features if 'bookmarks' in f)}",
    )

    # 2. XEP-0048 in private XML.
    storage = Bookmarks()
    storage.add_conference(PLAY, "JC", name="The Play's the Thing", autojoin=True)
    storage.add_url("http://the-tech.mit.edu/Shakespeare/", name="Complete Works")
    try:
        await desk.plugin["xep_0048"].set_bookmarks(storage, method="xep_0049", timeout=t)
        report.check("xep_0048 store in private XML", True)
    except (IqError, IqTimeout) as e:
        report.check("xep_0048 store in private XML", False, describe(e))
        return sessions

    # 3. The XEP-0402 notification.
    got = await wait_native_event(phone, ("item", PLAY), t)
    report.check("XEP-0402 notification after the private XML write", got)

    # 4. Read back through XEP-0402 and XEP-0048 over PEP.
    items = await native_items(desk, args)
    conf = items.get(PLAY)
    ok = conf is not None and conf["autojoin"] and conf["nick"] == "JC"
    report.check("XEP-0402 items show the room", ok, f"ids={sorted(items)}")
    try:
        res = await desk.plugin["xep_0048"].get_bookmarks(method="xep_0223", timeout=t)
        pep = res["pubsub"]["items"]["item"]["bookmarks"]
        report.check("xep_0048 over PEP shows the room", conference_jids(pep) == [PLAY],
                     f"{conference_jids(pep)}")
    except (IqError, IqTimeout) as e:
        report.check("xep_0048 over PEP shows the room", False, describe(e))

    # 5. A XEP-0402 publish reaches private XML.
    council = phone.plugin["xep_0402"].stanza.Conference()
    council["name"] = "Council of Oberon"
    council["autojoin"] = True
    council["nick"] = "Puck"
    try:
        await desk.plugin["xep_0060"].publish(args.jid, NATIVE, id=COUNCIL, payload=council,
                                              options=publish_options(desk), timeout=t)
        report.check("XEP-0402 publish (stock stanza, XEP-0402 options)", True)
    except (IqError, IqTimeout) as e:
        report.check("XEP-0402 publish (stock stanza, XEP-0402 options)", False, describe(e))
        return sessions
    private = await private_bookmarks(desk, args)
    report.check("private XML shows both rooms", conference_jids(private) == sorted([PLAY, COUNCIL]),
                 f"{conference_jids(private)}")
    puck = [c for c in private["conferences"] if str(c["jid"]) == COUNCIL]
    report.check("converted room keeps nick and autojoin",
                 bool(puck) and puck[0]["nick"] == "Puck" and puck[0]["autojoin"])
    urls = [u["url"] for u in private["urls"]]
    if args.urls_kept:
        report.check("URL bookmark kept after a XEP-0402 write", urls == ["http://the-tech.mit.edu/Shakespeare/"],
                     f"urls={urls}")
    else:
        report.check("URL bookmark dropped after a XEP-0402 write (XEP-0402 holds rooms only)",
                     urls == [], f"urls={urls}")

    # 6. A XEP-0402 retract reaches private XML.
    try:
        await desk.plugin["xep_0060"].retract(args.jid, NATIVE, PLAY, notify=True, timeout=t)
        report.check("XEP-0402 retract", True)
    except (IqError, IqTimeout) as e:
        report.check("XEP-0402 retract", False, describe(e))
    got = await wait_native_event(phone, ("retract", PLAY), t)
    report.check("retract notification", got)
    private = await private_bookmarks(desk, args)
    report.check("private XML lost the room", conference_jids(private) == [COUNCIL],
                 f"{conference_jids(private)}")

    # 7. XEP-0048 over PEP replaces the list.
    storage = Bookmarks()
    storage.add_conference(COUNCIL, "Puck", name="Council of Oberon", autojoin=True)
    storage.add_conference(GLOBE, "Burbage", name="The Globe")
    try:
        await desk.plugin["xep_0048"].set_bookmarks(storage, method="xep_0223", timeout=t)
        report.check("xep_0048 store over PEP (xep_0223 options)", True)
    except (IqError, IqTimeout) as e:
        report.check("xep_0048 store over PEP (xep_0223 options)", False, describe(e))
    items = await native_items(desk, args)
    report.check("XEP-0402 items follow the PEP list", sorted(items) == sorted([COUNCIL, GLOBE]),
                 f"ids={sorted(items)}")

    # 8. An empty private XML list empties XEP-0402.
    try:
        await desk.plugin["xep_0048"].set_bookmarks(Bookmarks(), method="xep_0049", timeout=t)
        items = await native_items(desk, args)
        report.check("empty private XML list leaves no XEP-0402 item", items == {}, f"ids={sorted(items)}")
    except (IqError, IqTimeout) as e:
        report.check("empty private XML list leaves no XEP-0402 item", False, describe(e))
    return sessions


def main():
    p = base_parser(__doc__, overall_timeout=90.0, jid_help="bare JID of the account")
    p.add_argument("--urls-kept", action="store_true",
                   help="expect XEP-0048 URL bookmarks to survive XEP-0402 writes")
    args = parse_args(p)
    finish(asyncio.run(run_sessions(run, args)))


if __name__ == "__main__":
    main()
