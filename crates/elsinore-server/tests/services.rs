//! The Jabber Programmers Guide's service examples replayed against the server core:
//! jabber:iq:version, jabber:iq:time / urn:xmpp:time, vcard-temp, jabber:iq:last,
//! jabber:iq:agents / agent, disco#items, jabber:iq:search, jabber:iq:register after
//! authentication, pass-through extensions, the update service.

mod common;

use common::{Net, T0, error_condition};
use elsinore_server::{ConnId, Release, ReleaseKind, ServerConfig};
use elsinore_storage::{Key, Space};
use elsinore_xml::Element;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

const WALL: u64 = 947_140_529_000; // 2000-01-06T06:35:29Z, the guide's jabber:iq:time example.

fn denmark_with(cfg: ServerConfig) -> (Net, ConnId, ConnId) {
    let mut net = Net::with_config(cfg);
    net.server.set_wall_clock(T0, WALL);
    net.add_user("hamlet@denmark", "gertrude");
    net.add_user("horatio@denmark", "friend");
    let hamlet = net.connect("hamlet@denmark/castle", "gertrude");
    let horatio = net.connect("horatio@denmark/castle", "friend");
    (net, hamlet, horatio)
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new("denmark");
    cfg.scram_iterations = 4096;
    cfg
}

fn denmark() -> (Net, ConnId, ConnId) {
    denmark_with(config())
}

fn child_text(e: &Element, path: &[(&str, &str)]) -> Option<String> {
    let mut cur = e;
    for (name, ns) in path {
        cur = cur.get_child(name, ns)?;
    }
    Some(cur.text().trim().to_string())
}

const VCARD: &str = "<vCard xmlns='vcard-temp'> <FN>Hamlet</FN> <N> <FAMILY>??</FAMILY> \
    <GIVEN>Hamlet</GIVEN> <MIDDLE/> </N> <NICKNAME>Ham</NICKNAME> <URL>??</URL> \
    <ORG> <ORGNAME>Holland Monarchy</ORGNAME> <ORGUNIT/> </ORG> <TITLE>Prince</TITLE> \
    <ROLE>Royal Family</ROLE> <TEL><VOICE/><HOME/></TEL> <ADR> <HOME/> <EXTADD/> <STREET/> \
    <LOCALITY>Denmark</LOCALITY> <COUNTRY>Holland</COUNTRY> </ADR> \
    <EMAIL><INTERNET/><PREF/>hamlet@denmark</EMAIL> </vCard>";

#[test]
fn version_of_the_server_and_routed_to_a_client() {
    let (mut net, hamlet, horatio) = denmark();
    let r = net.iq(
        horatio,
        "<iq type='get' id='v0' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"));
    let q = r.get_child("query", "jabber:iq:version").expect("query");
    assert_eq!(
        child_text(q, &[("name", "jabber:iq:version")]).as_deref(),
        Some("elsinore")
    );
    assert!(q.get_child("version", "jabber:iq:version").is_some());
    assert!(q.get_child("os", "jabber:iq:version").is_some());
    // Guide Example: to a full JID the query reaches that client, and its answer comes back.
    net.send(
        horatio,
        &el(
            "<iq type='get' id='1001' to='hamlet@denmark/castle' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:version'/></iq>",
        ),
    );
    let got = net.take_inbox(hamlet);
    let q = got
        .iter()
        .find(|e| e.attr("id") == Some("1001"))
        .expect("routed to hamlet");
    assert_eq!(q.attr("from"), Some("horatio@denmark/castle"));
    net.send(
        hamlet,
        &el(
            "<iq type='result' id='1001' to='horatio@denmark/castle' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:version'><name>WinJab</name><version>0.9.1.1</version>\
             <os>NT 4.0</os></query></iq>",
        ),
    );
    let got = net.take_inbox(horatio);
    let r = got
        .iter()
        .find(|e| e.attr("id") == Some("1001"))
        .expect("answer routed back");
    assert_eq!(r.attr("from"), Some("hamlet@denmark/castle"));
    assert_eq!(
        child_text(
            r,
            &[
                ("query", "jabber:iq:version"),
                ("name", "jabber:iq:version")
            ]
        )
        .as_deref(),
        Some("WinJab")
    );
}

#[test]
fn time_legacy_and_xep_0202() {
    let (mut net, _hamlet, horatio) = denmark();
    let r = net.iq(
        horatio,
        "<iq type='get' id='1001' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:time'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:time").expect("query");
    assert_eq!(
        child_text(q, &[("utc", "jabber:iq:time")]).as_deref(),
        Some("20000106T06:35:29")
    );
    assert_eq!(
        child_text(q, &[("tz", "jabber:iq:time")]).as_deref(),
        Some("UTC")
    );
    assert!(q.get_child("display", "jabber:iq:time").is_some());
    let r = net.iq(
        horatio,
        "<iq type='get' id='t2' to='denmark' xmlns='jabber:client'><time xmlns='urn:xmpp:time'/></iq>",
    );
    let t = r.get_child("time", "urn:xmpp:time").expect("time");
    assert_eq!(
        child_text(t, &[("utc", "urn:xmpp:time")]).as_deref(),
        Some("2000-01-06T06:35:29Z")
    );
    assert_eq!(
        child_text(t, &[("tzo", "urn:xmpp:time")]).as_deref(),
        Some("+00:00")
    );
}

#[test]
fn time_without_a_wall_clock_is_an_error_not_a_guess() {
    let mut net = Net::with_config(config());
    net.add_user("hamlet@denmark", "g");
    let h = net.connect("hamlet@denmark/castle", "g");
    let r = net.iq(
        h,
        "<iq type='get' id='t' xmlns='jabber:client'><time xmlns='urn:xmpp:time'/></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn vcard_set_own_get_anyones_stored_durably() {
    let (mut net, hamlet, horatio) = denmark();
    // Guide: set (no `to`), then Horatio gets it with to='hamlet@denmark'.
    let r = net.iq(
        hamlet,
        &format!("<iq type='set' id='1001' xmlns='jabber:client'>{VCARD}</iq>"),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(
        horatio,
        "<iq type='get' to='hamlet@denmark' id='1002' xmlns='jabber:client'><vCard xmlns='vcard-temp'/></iq>",
    );
    assert_eq!(r.attr("from"), Some("hamlet@denmark"));
    let v = r.get_child("vCard", "vcard-temp").expect("vCard");
    assert_eq!(v, &el(VCARD));
    // Own vCard, with no `to`.
    let r = net.iq(
        hamlet,
        "<iq type='get' id='g' xmlns='jabber:client'><vCard xmlns='vcard-temp'/></iq>",
    );
    assert_eq!(r.get_child("vCard", "vcard-temp"), Some(&el(VCARD)));
    // In the store, under the account.
    assert!(
        net.store
            .get(&Key::new("hamlet@denmark", Space::VCard, "vcard"))
            .is_some()
    );
    // No vCard yet: an empty one.
    let r = net.iq(
        hamlet,
        "<iq type='get' to='horatio@denmark' id='e' xmlns='jabber:client'><vCard xmlns='vcard-temp'/></iq>",
    );
    assert!(
        r.get_child("vCard", "vcard-temp")
            .is_some_and(|v| v.elements().count() == 0)
    );
    // Setting someone else's is forbidden.
    let r = net.iq(
        horatio,
        &format!("<iq type='set' to='hamlet@denmark' id='f' xmlns='jabber:client'>{VCARD}</iq>"),
    );
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
}

#[test]
fn vcard_over_the_size_limit_is_refused() {
    let mut cfg = config();
    cfg.max_vcard_bytes = 256;
    let (mut net, hamlet, _) = denmark_with(cfg);
    let big = format!(
        "<iq type='set' id='big' xmlns='jabber:client'><vCard xmlns='vcard-temp'><DESC>{}</DESC></vCard></iq>",
        "x".repeat(300)
    );
    let r = net.iq(hamlet, &big);
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    assert!(
        net.store
            .get(&Key::new("hamlet@denmark", Space::VCard, "vcard"))
            .is_none()
    );
}

/// Horatio asks for Hamlet's presence and Hamlet approves.
fn horatio_subscribes_to_hamlet(net: &mut Net, hamlet: ConnId, horatio: ConnId) {
    net.send(
        horatio,
        &el("<presence to='hamlet@denmark' type='subscribe' xmlns='jabber:client'/>"),
    );
    net.send(
        hamlet,
        &el("<presence to='horatio@denmark' type='subscribed' xmlns='jabber:client'/>"),
    );
}

#[test]
fn last_activity_uptime_and_accounts() {
    let (mut net, hamlet, horatio) = denmark();
    let r = net.iq(
        horatio,
        "<iq type='get' id='l' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:last'/></iq>",
    );
    assert_eq!(
        r.get_child("query", "jabber:iq:last")
            .and_then(|q| q.attr("seconds")),
        Some("0")
    );
    // Not subscribed to Hamlet's presence: forbidden.
    let ask = "<iq type='get' id='l2' to='hamlet@denmark' xmlns='jabber:client'><query xmlns='jabber:iq:last'/></iq>";
    let r = net.iq(horatio, ask);
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // Horatio subscribes, Hamlet approves.
    horatio_subscribes_to_hamlet(&mut net, hamlet, horatio);
    net.send(hamlet, &el("<presence xmlns='jabber:client'/>"));
    let r = net.iq(horatio, ask);
    assert_eq!(
        r.get_child("query", "jabber:iq:last")
            .and_then(|q| q.attr("seconds")),
        Some("0"),
        "online: active now; {r:?}"
    );
    // Hamlet's last session ends: its time is stored and answered.
    net.server.handle_eof(hamlet, T0);
    net.drive();
    assert!(
        net.store
            .get(&Key::new("hamlet@denmark", Space::Last, ""))
            .is_some()
    );
    let r = net.iq(horatio, ask);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert!(
        r.get_child("query", "jabber:iq:last")
            .and_then(|q| q.attr("seconds"))
            .is_some()
    );
}

/// A store failure while reading the owner's roster is the server's problem: the
/// requester gets `internal-server-error`, not `forbidden` as if it had no subscription.
#[test]
fn last_activity_with_a_failed_roster_read_is_an_internal_error() {
    let (mut net, hamlet, horatio) = denmark();
    horatio_subscribes_to_hamlet(&mut net, hamlet, horatio);
    // Hamlet goes away, so his roster is read from the store for Horatio's question.
    net.server.handle_eof(hamlet, T0);
    net.clients.remove(&hamlet);
    net.drive();
    net.fail_if = Some(|op| matches!(op, elsinore_storage::Op::Get(k) if k.space == Space::Roster));
    let ask = "<iq type='get' id='l3' to='hamlet@denmark' xmlns='jabber:client'><query xmlns='jabber:iq:last'/></iq>";
    let r = net.iq(horatio, ask);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error"),
        "{r:?}"
    );
    net.fail_if = None;
    let r = net.iq(horatio, ask);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

#[test]
fn agents_agent_and_disco_items_from_one_service_list() {
    let (mut net, _hamlet, horatio) = denmark();
    let r = net.iq(
        horatio,
        "<iq type='get' id='1001' xmlns='jabber:client'><query xmlns='jabber:iq:agents'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:agents").expect("agents");
    let jids: Vec<&str> = q.elements().filter_map(|a| a.attr("jid")).collect();
    assert_eq!(jids, ["denmark", "conference.denmark"]);
    let jud = q.elements().next().expect("jud");
    assert!(jud.get_child("search", "jabber:iq:agents").is_some());
    assert_eq!(
        child_text(jud, &[("service", "jabber:iq:agents")]).as_deref(),
        Some("jud")
    );
    // Guide: jabber:iq:agent to the conference server.
    let r = net.iq(
        horatio,
        "<iq type='get' id='1002' to='conference.denmark' xmlns='jabber:client'><query xmlns='jabber:iq:agent'/></iq>",
    );
    let a = r.get_child("query", "jabber:iq:agent").expect("agent");
    assert!(a.get_child("groupchat", "jabber:iq:agent").is_some());
    assert_eq!(
        child_text(a, &[("name", "jabber:iq:agent")]).as_deref(),
        Some("Conference Server")
    );
    let r = net.iq(
        horatio,
        "<iq type='get' id='d' to='denmark' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    let items: Vec<&str> = r
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .map(|q| q.elements().filter_map(|i| i.attr("jid")).collect())
        .unwrap_or_default();
    assert_eq!(items, ["conference.denmark"]);
    let r = net.iq(
        horatio,
        "<iq type='get' id='i' to='denmark' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let feats: Vec<&str> = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .map(|q| q.elements().filter_map(|f| f.attr("var")).collect())
        .unwrap_or_default();
    for f in [
        "jabber:iq:version",
        "urn:xmpp:time",
        "vcard-temp",
        "jabber:iq:search",
        "jabber:x:data",
        "jabber:iq:last",
    ] {
        assert!(feats.contains(&f), "{f} in {feats:?}");
    }
}

fn set_vcard(net: &mut Net, id: ConnId, first: &str, nick: &str, email: &str) {
    let r = net.iq(
        id,
        &format!(
            "<iq type='set' id='vc' xmlns='jabber:client'><vCard xmlns='vcard-temp'><N><GIVEN>{first}</GIVEN></N>\
             <NICKNAME>{nick}</NICKNAME><EMAIL><USERID>{email}</USERID></EMAIL></vCard></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

/// denmark with three directory entries (the king and Hamlet share the first name), and
/// Horatio's session, which searches.
fn denmark_directory() -> (Net, ConnId) {
    let (mut net, hamlet, horatio) = denmark();
    net.add_user("king@denmark", "k");
    let king = net.connect("king@denmark/throne", "k");
    set_vcard(&mut net, king, "Hamlet", "King", "king@denmark");
    set_vcard(&mut net, hamlet, "Hamlet", "Ham", "hamlet@denmark");
    set_vcard(&mut net, horatio, "Horatio", "Hor", "horatio@denmark");
    (net, horatio)
}

#[test]
fn search_the_directory_as_the_guide_shows() {
    let (mut net, horatio) = denmark_directory();
    // Example 9-1 / 9-2: the fields and a key.
    let r = net.iq(
        horatio,
        "<iq type='get' id='1001' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:search").expect("form");
    for f in ["first", "last", "nick", "email", "key", "instructions"] {
        assert!(q.get_child(f, "jabber:iq:search").is_some(), "{f}");
    }
    let key = child_text(q, &[("key", "jabber:iq:search")]).expect("key");
    // Example 9-3 / 9-4.
    let r = net.iq(
        horatio,
        &format!(
            "<iq type='set' id='1002' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>\
             <first>Hamlet</first><key>{key}</key></query></iq>"
        ),
    );
    let q = r.get_child("query", "jabber:iq:search").expect("results");
    let mut jids: Vec<&str> = q.elements().filter_map(|i| i.attr("jid")).collect();
    jids.sort();
    assert_eq!(jids, ["hamlet@denmark", "king@denmark"]);
    let ham = q
        .elements()
        .find(|i| i.attr("jid") == Some("hamlet@denmark"))
        .expect("hamlet");
    assert_eq!(
        child_text(ham, &[("nick", "jabber:iq:search")]).as_deref(),
        Some("Ham")
    );
    assert_eq!(
        child_text(ham, &[("email", "jabber:iq:search")]).as_deref(),
        Some("hamlet@denmark")
    );
    // Case-insensitive, several fields must all match.
    let r = net.iq(
        horatio,
        "<iq type='set' id='s3' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>\
         <first>hamlet</first><nick>king</nick></query></iq>",
    );
    let n = r
        .get_child("query", "jabber:iq:search")
        .map(|q| q.elements().count());
    assert_eq!(n, Some(1));
    // Example 1003: no match is an empty result.
    let r = net.iq(
        horatio,
        "<iq type='set' id='1003' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>\
         <last>Fortinbras</last></query></iq>",
    );
    assert_eq!(
        r.get_child("query", "jabber:iq:search")
            .map(|q| q.elements().count()),
        Some(0)
    );
    // Nothing to search for.
    let r = net.iq(
        horatio,
        "<iq type='set' id='s5' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'/></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
}

#[test]
fn search_results_are_bounded_and_flagged_truncated() {
    let mut cfg = config();
    cfg.search_max_results = 1;
    let (mut net, hamlet, horatio) = denmark_with(cfg);
    set_vcard(&mut net, hamlet, "Same", "a", "a@x");
    set_vcard(&mut net, horatio, "Same", "b", "b@x");
    let r = net.iq(
        horatio,
        "<iq type='set' id='s' xmlns='jabber:client'><query xmlns='jabber:iq:search'><first>same</first></query></iq>",
    );
    let q = r.get_child("query", "jabber:iq:search").expect("results");
    assert_eq!(q.elements().filter(|i| i.name == "item").count(), 1);
    assert!(q.get_child("truncated", "jabber:iq:search").is_some());
}

const XD: &str = "jabber:x:data";

/// A submitted XEP-0055 §3 search form with `fields` (var, value).
fn form_search(fields: &[(&str, &str)]) -> String {
    let mut f = String::from(
        "<field var='FORM_TYPE' type='hidden'><value>jabber:iq:search</value></field>",
    );
    for (var, value) in fields {
        f.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    format!(
        "<iq type='set' id='fs' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>\
         <x xmlns='jabber:x:data' type='submit'>{f}</x></query></iq>"
    )
}

/// The value of `var` in a form item.
fn form_value(item: &Element, var: &str) -> Option<String> {
    item.elements()
        .find(|f| f.is("field", XD) && f.attr("var") == Some(var))
        .and_then(|f| f.get_child("value", XD))
        .map(Element::text)
}

#[test]
fn search_the_directory_with_data_forms() {
    let (mut net, horatio) = denmark_directory();
    // XEP-0055 Example 7: the legacy fields and, beside them, the form.
    let r = net.iq(
        horatio,
        "<iq type='get' id='g' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:search").expect("query");
    for f in ["first", "last", "nick", "email", "instructions"] {
        assert!(q.get_child(f, "jabber:iq:search").is_some(), "{f}");
    }
    let x = q.get_child("x", XD).expect("a data form");
    assert_eq!(x.attr("type"), Some("form"));
    assert!(x.get_child("title", XD).is_some());
    assert!(x.get_child("instructions", XD).is_some());
    assert_eq!(
        form_value(x, "FORM_TYPE").as_deref(),
        Some("jabber:iq:search")
    );
    for f in ["first", "last", "nick", "email"] {
        let field = x
            .elements()
            .find(|e| e.attr("var") == Some(f))
            .unwrap_or_else(|| panic!("{f}"));
        assert_eq!(field.attr("type"), Some("text-single"), "{f}");
    }
    // Example 8 / 9: a submitted form, an unknown field ignored, a result form back.
    let r = net.iq(
        horatio,
        &form_search(&[("first", "hamlet"), ("x-shoe-size", "9"), ("last", "")]),
    );
    let q = r.get_child("query", "jabber:iq:search").expect("results");
    assert!(
        q.get_child("item", "jabber:iq:search").is_none(),
        "no legacy items"
    );
    let x = q.get_child("x", XD).expect("a result form");
    assert_eq!(x.attr("type"), Some("result"));
    let reported: Vec<&str> = x
        .get_child("reported", XD)
        .expect("reported")
        .elements()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert_eq!(reported, ["jid", "first", "last", "nick", "email"]);
    let items: Vec<&Element> = x.elements().filter(|e| e.is("item", XD)).collect();
    let mut jids: Vec<String> = items.iter().filter_map(|i| form_value(i, "jid")).collect();
    jids.sort();
    assert_eq!(jids, ["hamlet@denmark", "king@denmark"]);
    let ham = items
        .iter()
        .find(|i| form_value(i, "jid").as_deref() == Some("hamlet@denmark"))
        .expect("hamlet");
    assert_eq!(form_value(ham, "nick").as_deref(), Some("Ham"));
    assert_eq!(form_value(ham, "email").as_deref(), Some("hamlet@denmark"));
    assert!(q.get_child("truncated", "jabber:iq:search").is_none());
    // Every field filled in must match.
    let r = net.iq(
        horatio,
        &form_search(&[("first", "HAMLET"), ("nick", "king")]),
    );
    let n = r
        .get_child("query", "jabber:iq:search")
        .and_then(|q| q.get_child("x", XD))
        .map(|x| x.elements().filter(|e| e.is("item", XD)).count());
    assert_eq!(n, Some(1));
    // No match: a result form with no items.
    let r = net.iq(horatio, &form_search(&[("last", "Fortinbras")]));
    let x = r
        .get_child("query", "jabber:iq:search")
        .and_then(|q| q.get_child("x", XD))
        .expect("a result form");
    assert!(x.get_child("reported", XD).is_some());
    assert_eq!(x.elements().filter(|e| e.is("item", XD)).count(), 0);
    // The legacy search still gets legacy items.
    let r = net.iq(
        horatio,
        "<iq type='set' id='l' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>\
         <nick>hor</nick></query></iq>",
    );
    let q = r.get_child("query", "jabber:iq:search").expect("results");
    assert!(q.get_child("x", XD).is_none());
    let jids: Vec<&str> = q.elements().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, ["horatio@denmark"]);
}

#[test]
fn invalid_search_forms_are_bad_requests() {
    let (mut net, _hamlet, horatio) = denmark();
    let wrap = |x: &str| {
        format!(
            "<iq type='set' id='b' to='denmark' xmlns='jabber:client'><query xmlns='jabber:iq:search'>{x}</query></iq>"
        )
    };
    let many: String = (0..40)
        .map(|i| format!("<field var='x{i}'><value>v</value></field>"))
        .collect();
    for bad in [
        // Cancelled, or not a submission.
        wrap("<x xmlns='jabber:x:data' type='cancel'/>"),
        wrap(
            "<x xmlns='jabber:x:data' type='form'><field var='first'><value>a</value></field></x>",
        ),
        // Another form's FORM_TYPE.
        wrap(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field>\
             <field var='first'><value>a</value></field></x>",
        ),
        // Nothing filled in.
        form_search(&[("first", " ")]),
        // A text-single field twice, or with two values; a field without var.
        form_search(&[("first", "a"), ("first", "b")]),
        wrap(
            "<x xmlns='jabber:x:data' type='submit'><field var='first'><value>a</value><value>b</value></field></x>",
        ),
        wrap("<x xmlns='jabber:x:data' type='submit'><field><value>a</value></field></x>"),
        // More fields than the bound.
        wrap(&format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='first'><value>a</value></field>{many}</x>"
        )),
    ] {
        let r = net.iq(horatio, &bad);
        assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{bad}");
    }
}

#[test]
fn form_search_results_are_bounded_and_flagged_truncated() {
    let mut cfg = config();
    cfg.search_max_results = 1;
    let (mut net, hamlet, horatio) = denmark_with(cfg);
    set_vcard(&mut net, hamlet, "Same", "a", "a@x");
    set_vcard(&mut net, horatio, "Same", "b", "b@x");
    // Values are trimmed (and cut at 128 bytes) like the legacy ones.
    let long = format!("same{}", " ".repeat(300));
    let r = net.iq(horatio, &form_search(&[("first", &long)]));
    let q = r.get_child("query", "jabber:iq:search").expect("results");
    let x = q.get_child("x", XD).expect("a result form");
    assert_eq!(x.elements().filter(|e| e.is("item", XD)).count(), 1);
    assert!(q.get_child("truncated", "jabber:iq:search").is_some());
}

#[test]
fn register_after_auth_key_password_change_and_remove() {
    let (mut net, hamlet, horatio) = denmark();
    let r = net.iq(
        hamlet,
        "<iq type='get' id='1001' xmlns='jabber:client'><query xmlns='jabber:iq:register'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:register").expect("query");
    assert!(q.get_child("registered", "jabber:iq:register").is_some());
    assert_eq!(
        child_text(q, &[("username", "jabber:iq:register")]).as_deref(),
        Some("hamlet")
    );
    let key = child_text(q, &[("key", "jabber:iq:register")]).expect("the guide's key");
    // A wrong key is refused.
    let r = net.iq(
        hamlet,
        "<iq type='set' id='bad' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <username>hamlet</username><password>x</password><key>nope</key></query></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    // Someone else's username is not allowed.
    let r = net.iq(
        hamlet,
        "<iq type='set' id='other' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <username>horatio</username><password>x</password></query></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    // Password change with the key kept (Example 9-3).
    let r = net.iq(
        hamlet,
        &format!(
            "<iq type='set' id='pw' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
             <username>hamlet</username><password>ophelia</password><key>{key}</key></query></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let again = net.connect("hamlet@denmark/study", "ophelia");
    assert!(net.jid_of(again).is_some(), "the new password works");
    let old = net.connect("hamlet@denmark/other", "gertrude");
    assert!(net.jid_of(old).is_none(), "the old one does not");
    // Data to be removed with the account.
    set_vcard(&mut net, hamlet, "Hamlet", "Ham", "hamlet@denmark");
    net.send(
        hamlet,
        &el("<presence to='horatio@denmark' type='subscribe' xmlns='jabber:client'/>"),
    );
    // Example 9-5: remove with the key.
    let r = net.iq(
        hamlet,
        &format!(
            "<iq type='set' id='rm' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
             <remove/><key>{key}</key></query></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert!(net.closed_error(hamlet).is_some(), "session closed");
    assert!(net.closed_error(again).is_some(), "every session closed");
    assert!(
        net.store.iter().all(|(k, _)| k.account != "hamlet@denmark"),
        "every stored thing of the account is gone"
    );
    // Not searchable any more.
    let r = net.iq(
        horatio,
        "<iq type='set' id='s' xmlns='jabber:client'><query xmlns='jabber:iq:search'><nick>Ham</nick></query></iq>",
    );
    assert_eq!(
        r.get_child("query", "jabber:iq:search")
            .map(|q| q.elements().count()),
        Some(0)
    );
    let gone = net.connect("hamlet@denmark/back", "ophelia");
    assert!(net.jid_of(gone).is_none(), "cannot log in any more");
}

#[test]
fn extensions_pass_through_intact() {
    let (mut net, _hamlet, horatio) = denmark();
    net.add_user("sailor@denmark", "s");
    let sailor = net.connect("sailor@denmark/ship", "s");
    net.send(horatio, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(horatio);
    // jabber:x:oob (guide), jabber:x:roster, XHTML-IM and an unknown payload in one message.
    let msg = el(
        "<message to='horatio@denmark' xmlns='jabber:client'><body> URL Attached. </body>\
        <x xmlns='jabber:x:oob'><url> http://denmark/act4/letter-1.html </url><desc> There's a letter for you sir </desc></x>\
        <x xmlns='jabber:x:roster'><item jid='hamlet@denmark' name='Hamlet'><group>Friends</group></item></x>\
        <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='font-weight:bold'>URL <em>Attached</em>.</p></body></html>\
        <custom xmlns='urn:example:unknown' a='1'><deep><deeper>text &amp; more</deeper></deep></custom></message>",
    );
    net.send(sailor, &msg);
    let got = net.take_inbox(horatio);
    let m = got.iter().find(|e| e.name == "message").expect("delivered");
    assert_eq!(m.attr("from"), Some("sailor@denmark/ship"));
    let sent: Vec<&Element> = msg.elements().collect();
    let recv: Vec<&Element> = m.elements().collect();
    assert_eq!(sent, recv, "every child element intact");
    // jabber:iq:oob (guide) to a full JID, and its result back.
    net.send(
        sailor,
        &el("<iq type='set' id='oob1' to='horatio@denmark/castle' xmlns='jabber:client'><query xmlns='jabber:iq:oob'>\
             <url>http://denmark/act4/letter-1.html</url><desc>There's a letter for you sir</desc></query></iq>"),
    );
    let got = net.take_inbox(horatio);
    let iq = got
        .iter()
        .find(|e| e.attr("id") == Some("oob1"))
        .expect("routed");
    assert!(iq.get_child("query", "jabber:iq:oob").is_some());
    net.send(
        horatio,
        &el("<iq type='result' id='oob1' to='sailor@denmark/ship' xmlns='jabber:client'/>"),
    );
    assert!(
        net.take_inbox(sailor)
            .iter()
            .any(|e| e.attr("id") == Some("oob1"))
    );
}

fn update_config() -> ServerConfig {
    let mut cfg = config();
    let rel = |version: &str, kind, url: &str| Release {
        client: "winjab".into(),
        version: version.into(),
        kind,
        priority: "optional".into(),
        desc: String::new(),
        url: url.into(),
    };
    cfg.releases = vec![
        rel(
            "0.9.1.1",
            ReleaseKind::Release,
            "http://update.denmark/winjab/winjab_setup.exe",
        ),
        rel(
            "0.9.0.5",
            ReleaseKind::Release,
            "http://update.denmark/winjab/old.exe",
        ),
        rel(
            "0.9.2.16",
            ReleaseKind::Beta,
            "http://update.denmark/winjab/winjab_beta.exe",
        ),
    ];
    cfg
}

#[test]
fn autoupdate_as_the_guide_shows() {
    let (mut net, hamlet, _) = denmark_with(update_config());
    // Example 7-1 / 7-2.
    net.send(
        hamlet,
        &el("<presence to='winjab@update.denmark/0.9.1.0' xmlns='jabber:client'/>"),
    );
    let got = net.take_inbox(hamlet);
    let m = got
        .iter()
        .find(|e| e.name == "message")
        .expect("notification");
    assert_eq!(m.attr("from"), Some("winjab@update.denmark"));
    assert_eq!(
        m.get_child("x", "jabber:x:autoupdate")
            .map(|x| x.text())
            .as_deref(),
        Some("winjab@update.denmark")
    );
    // Up to date: nothing.
    net.send(
        hamlet,
        &el("<presence to='winjab@update.denmark/0.9.1.1' xmlns='jabber:client'/>"),
    );
    assert!(net.take_inbox(hamlet).iter().all(|e| e.name != "message"));
    // Example 7-3 / 7-4.
    let r = net.iq(
        hamlet,
        "<iq type='get' id='1001' to='winjab@update.denmark' xmlns='jabber:client'><query xmlns='jabber:iq:autoupdate'/></iq>",
    );
    let q = r.get_child("query", "jabber:iq:autoupdate").expect("query");
    let ns = "jabber:iq:autoupdate";
    assert_eq!(
        child_text(q, &[("release", ns), ("ver", ns)]).as_deref(),
        Some("0.9.1.1")
    );
    assert_eq!(
        q.get_child("release", ns).and_then(|r| r.attr("priority")),
        Some("optional")
    );
    assert_eq!(
        child_text(q, &[("beta", ns), ("ver", ns)]).as_deref(),
        Some("0.9.2.16")
    );
    let r = net.iq(
        hamlet,
        "<iq type='get' id='u2' to='gabber@update.denmark' xmlns='jabber:client'><query xmlns='jabber:iq:autoupdate'/></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn no_releases_no_update_service() {
    let (mut net, hamlet, _) = denmark();
    let r = net.iq(
        hamlet,
        "<iq type='get' id='u' to='winjab@update.denmark' xmlns='jabber:client'><query xmlns='jabber:iq:autoupdate'/></iq>",
    );
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("remote-server-not-found")
    );
}
