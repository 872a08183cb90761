//! The Jabber Programmers Guide's examples for jabber:iq:roster, presence,
//! messages and jabber:x:delay, replayed against the server core (the guide's
//! JIDs: `hamlet@denmark`, `horatio@denmark`, `claudius@denmark`).

mod common;

use common::{Net, T0};
use elsinore_server::ConnId;
use elsinore_xml::Element;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn denmark() -> Net {
    let mut net = Net::new("denmark");
    net.server.set_wall_clock(T0, 947_140_529_000); // 2000-01-06T06:35:29Z
    for u in ["hamlet", "horatio", "claudius"] {
        net.add_user(&format!("{u}@denmark"), u);
    }
    net
}

fn roster_get(net: &mut Net, id: ConnId) -> Element {
    // Example 9-2. Request for Entire Roster
    net.iq(
        id,
        r#"<iq type="get" id="1001" xmlns="jabber:client"><query xmlns="jabber:iq:roster"/></iq>"#,
    )
}

fn item<'a>(q: &'a Element, jid: &str) -> Option<&'a Element> {
    q.get_child("query", "jabber:iq:roster")?
        .elements()
        .find(|i| i.attr("jid") == Some(jid))
}

#[test]
fn roster_examples_9_1_to_9_5() {
    let mut net = denmark();
    let hamlet = net.connect("hamlet@denmark/elsinore", "hamlet");
    let claudius = net.connect("claudius@denmark/throne", "claudius");
    roster_get(&mut net, hamlet);
    roster_get(&mut net, claudius);
    net.send(hamlet, &el(r#"<presence xmlns="jabber:client"/>"#));
    net.send(claudius, &el(r#"<presence xmlns="jabber:client"/>"#));

    // Hamlet names the King and puts him in Family, then they subscribe both ways.
    net.iq(
        hamlet,
        r#"<iq type="set" id="s1" xmlns="jabber:client"><query xmlns="jabber:iq:roster"><item jid="claudius@denmark" name="King"><group>Family</group></item></query></iq>"#,
    );
    net.take_inbox(hamlet);
    net.send(
        hamlet,
        &el(r#"<presence xmlns="jabber:client" to="claudius@denmark" type="subscribe"/>"#),
    );
    net.send(
        claudius,
        &el(r#"<presence xmlns="jabber:client" to="hamlet@denmark" type="subscribed"/>"#),
    );
    // Example 9-1. Server Push of New Subscription: an iq set with the changed item.
    let pushes: Vec<Element> = net
        .take_inbox(hamlet)
        .into_iter()
        .filter(|e| e.name == "iq" && e.attr("type") == Some("set"))
        .collect();
    let last = pushes.last().expect("roster push after the subscription");
    let pushed = item(last, "claudius@denmark").expect("pushed item");
    assert_eq!(pushed.attr("subscription"), Some("to"));
    assert_eq!(pushed.attr("name"), Some("King"));
    net.send(
        claudius,
        &el(r#"<presence xmlns="jabber:client" to="hamlet@denmark" type="subscribe"/>"#),
    );
    net.send(
        hamlet,
        &el(r#"<presence xmlns="jabber:client" to="claudius@denmark" type="subscribed"/>"#),
    );
    // Horatio asks Hamlet; Hamlet approves (from); Hamlet asks Fortinbras (pending).
    let horatio = net.connect("horatio@denmark/watch", "horatio");
    net.send(
        horatio,
        &el(r#"<presence xmlns="jabber:client" to="hamlet@denmark" type="subscribe"/>"#),
    );
    net.send(
        hamlet,
        &el(r#"<presence xmlns="jabber:client" to="horatio@denmark" type="subscribed"/>"#),
    );
    net.send(
        hamlet,
        &el(r#"<presence xmlns="jabber:client" to="fortinbras@denmark" type="subscribe"/>"#),
    );
    net.take_inbox(hamlet);

    // Example 9-3. Result of Roster Request.
    let r = roster_get(&mut net, hamlet);
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("id"), Some("1001"));
    let king = item(&r, "claudius@denmark").expect("claudius");
    assert_eq!(king.attr("subscription"), Some("both"));
    assert_eq!(king.attr("name"), Some("King"));
    assert_eq!(
        king.get_child("group", "jabber:iq:roster")
            .map(|g| g.text())
            .as_deref(),
        Some("Family")
    );
    let horatio_item = item(&r, "horatio@denmark").expect("horatio");
    assert_eq!(horatio_item.attr("subscription"), Some("from"));
    let fortinbras = item(&r, "fortinbras@denmark");
    // fortinbras@denmark has no account: the request is refused on his behalf.
    assert!(fortinbras.is_none_or(|f| f.attr("ask").is_none()), "{r:?}");

    // Example 9-4 / 9-5: removing the King: a push with subscription="remove", then the result.
    let removed = net.iq(
        hamlet,
        r#"<iq type="set" id="1002" xmlns="jabber:client"><query xmlns="jabber:iq:roster"><item jid="claudius@denmark" name="King" subscription="remove"/></query></iq>"#,
    );
    assert_eq!(removed.attr("type"), Some("result"));
    let push = net
        .take_inbox(hamlet)
        .into_iter()
        .find(|e| e.name == "iq" && e.attr("type") == Some("set"))
        .expect("push of the removal");
    assert_eq!(
        item(&push, "claudius@denmark").and_then(|i| i.attr("subscription")),
        Some("remove")
    );
    // Both directions were cancelled on the King's side too.
    let kr = roster_get(&mut net, claudius);
    assert_eq!(
        item(&kr, "hamlet@denmark").and_then(|i| i.attr("subscription")),
        Some("none")
    );
}

#[test]
fn presence_examples_11_1_to_11_4() {
    let mut net = denmark();
    let hamlet = net.connect("hamlet@denmark/elsinore", "hamlet");
    let horatio = net.connect("horatio@denmark/watch", "horatio");
    // Example 11-1. Initial Presence.
    net.send(horatio, &el(r#"<presence xmlns="jabber:client"/>"#));
    net.send(hamlet, &el(r#"<presence xmlns="jabber:client"/>"#));
    // Example 11-2 / 11-3: subscribe, subscribed.
    net.send(
        hamlet,
        &el(r#"<presence xmlns="jabber:client" to="horatio@denmark" type="subscribe"/>"#),
    );
    net.send(
        horatio,
        &el(r#"<presence xmlns="jabber:client" to="hamlet@denmark" type="subscribed"/>"#),
    );
    net.take_inbox(hamlet);
    // Example 11-4. Complete Presence Information, sent by Horatio, seen by Hamlet
    // with a from the server put there (no spoofing).
    net.send(
        horatio,
        &el(r#"<presence xmlns="jabber:client" from="hamlet@denmark"><show>na</show><status>Gone to England</status></presence>"#),
    );
    let got = net.take_inbox(hamlet);
    let p = got
        .iter()
        .find(|e| e.name == "presence")
        .unwrap_or_else(|| panic!("presence update: {got:?}"));
    assert_eq!(p.attr("from"), Some("horatio@denmark/watch"));
    assert_eq!(
        p.get_child("status", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("Gone to England")
    );
}

#[test]
fn message_examples_11_1_to_11_4() {
    let mut net = denmark();
    let hamlet = net.connect("hamlet@denmark/elsinore", "hamlet");
    let horatio = net.connect("horatio@denmark/watch", "horatio");
    net.send(horatio, &el(r#"<presence xmlns="jabber:client"/>"#));
    net.send(hamlet, &el(r#"<presence xmlns="jabber:client"/>"#));
    net.take_inbox(hamlet);
    net.take_inbox(horatio);
    // Example 11-2: XHTML Basic travels intact beside the body.
    let xhtml = r#"<message to="horatio@denmark" xmlns="jabber:client"><body>Angels and Ministers of Grace, defend us!</body><html xmlns="http://www.w3.org/TR/xhtml-basic"><body><div style="font-size: medium; color: red; text-align: center"> Angels and Ministers of Grace, defend us! </div></body></html></message>"#;
    net.send(hamlet, &el(xhtml));
    let got = net.take_inbox(horatio);
    assert_eq!(got.len(), 1, "{got:?}");
    let mut want = el(xhtml);
    want.set_attr("from", "hamlet@denmark/elsinore");
    assert_eq!(got[0], want, "delivered exactly, from stamped");
    // Example 11-3 / 11-4: subject and thread survive the round trip.
    net.send(
        horatio,
        &el(r#"<message to="hamlet@denmark" type="chat" from="horatio@denmark" xmlns="jabber:client"><subject>Plotting</subject><body> Here, sweet lord, at your service. </body><thread>2001</thread></message>"#),
    );
    let got = net.take_inbox(hamlet);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("from"), Some("horatio@denmark/watch"));
    assert_eq!(
        got[0]
            .get_child("thread", "jabber:client")
            .map(|t| t.text())
            .as_deref(),
        Some("2001")
    );
    assert_eq!(
        got[0]
            .get_child("subject", "jabber:client")
            .map(|t| t.text())
            .as_deref(),
        Some("Plotting")
    );
}

#[test]
fn delayed_message_example_10_2_and_restart() {
    let mut net = denmark();
    let hamlet = net.connect("hamlet@denmark/elsinore", "hamlet");
    net.send(
        hamlet,
        &el(r#"<message to="horatio@denmark" xmlns="jabber:client"><body>Let the King have the letters I sent</body></message>"#),
    );
    // The offline message is durable: a new server over the same store delivers it.
    net.restart();
    let horatio = net.connect("horatio@denmark/watch", "horatio");
    net.send(horatio, &el(r#"<presence xmlns="jabber:client"/>"#));
    let got: Vec<Element> = net
        .take_inbox(horatio)
        .into_iter()
        .filter(|e| e.name == "message")
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let x = got[0]
        .get_child("x", "jabber:x:delay")
        .expect("legacy delay");
    // The guide: for a stored message, `from` is the recipient; the stamp is CCYYMMDDThh:mm:ss.
    assert_eq!(x.attr("from"), Some("horatio@denmark"));
    assert_eq!(x.attr("stamp"), Some("20000106T06:35:29"));
    assert_eq!(got[0].attr("from"), Some("hamlet@denmark/elsinore"));
}

#[test]
fn vcard_survives_a_restart() {
    let mut net = denmark();
    let hamlet = net.connect("hamlet@denmark/elsinore", "hamlet");
    let r = net.iq(
        hamlet,
        r#"<iq type="set" id="v1" xmlns="jabber:client"><vCard xmlns="vcard-temp"><FN>Hamlet</FN><NICKNAME>Prince</NICKNAME></vCard></iq>"#,
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    net.restart();
    let horatio = net.connect("horatio@denmark/watch", "horatio");
    let r = net.iq(
        horatio,
        r#"<iq type="get" id="v2" to="hamlet@denmark" xmlns="jabber:client"><vCard xmlns="vcard-temp"/></iq>"#,
    );
    let card = r.get_child("vCard", "vcard-temp").expect("vCard");
    assert_eq!(
        card.get_child("FN", "vcard-temp")
            .map(|f| f.text())
            .as_deref(),
        Some("Hamlet")
    );
}
