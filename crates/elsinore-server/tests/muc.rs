//! Group chat at conference.<domain>: the guide's Example 6-x session replayed, and the
//! XEP-0045 basic join today's clients rely on.

mod common;

use common::{Net, T0, error_condition};
use elsinore_server::{ConnId, ServerConfig};
use elsinore_xml::Element;

const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const ROOM: &str = "act3@conference.denmark";

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn net_with(cfg: ServerConfig, users: &[&str]) -> (Net, Vec<ConnId>) {
    let mut net = Net::with_config(cfg);
    net.server.set_wall_clock(T0, 1_700_000_000_000);
    let mut ids = Vec::new();
    for u in users {
        net.add_user(&format!("{u}@denmark"), "pw");
        ids.push(net.connect(&format!("{u}@denmark/castle"), "pw"));
    }
    (net, ids)
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new("denmark");
    cfg.scram_iterations = 4096;
    cfg
}

fn status_codes(p: &Element) -> Vec<String> {
    p.get_child("x", MUC_USER)
        .map(|x| {
            x.elements()
                .filter(|s| s.name == "status")
                .filter_map(|s| s.attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn item_attr<'a>(p: &'a Element, name: &str) -> Option<&'a str> {
    p.get_child("x", MUC_USER)?
        .get_child("item", MUC_USER)?
        .attr(name)
}

fn join(net: &mut Net, id: ConnId, nick: &str) -> Vec<Element> {
    net.send(
        id,
        &el(&format!(
            "<presence to='{ROOM}/{nick}' xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )),
    );
    net.take_inbox(id)
}

fn from_of(els: &[Element], name: &str) -> Vec<String> {
    els.iter()
        .filter(|e| e.name == name)
        .filter_map(|e| e.attr("from").map(str::to_string))
        .collect()
}

#[test]
fn guide_session_join_talk_private_leave() {
    let (mut net, ids) = net_with(config(), &["hamlet", "ophelia"]);
    let (hamlet, ophelia) = (ids[0], ids[1]);
    // Example 6-1 with the groupchat 1.0 join (no muc element): the room is created.
    net.send(
        hamlet,
        &el(&format!(
            "<presence to='{ROOM}/Hamlet' xmlns='jabber:client'/>"
        )),
    );
    let got = net.take_inbox(hamlet);
    let own = got
        .iter()
        .find(|e| e.name == "presence")
        .expect("own presence");
    assert_eq!(own.attr("from"), Some(&*format!("{ROOM}/Hamlet")));
    assert_eq!(status_codes(own), ["110", "201"]);
    assert_eq!(item_attr(own, "affiliation"), Some("owner"));
    assert_eq!(item_attr(own, "role"), Some("moderator"));
    // The subject ends the join (empty: none set).
    let subj = got.iter().find(|e| e.name == "message").expect("subject");
    assert_eq!(
        subj.get_child("subject", "jabber:client").map(|s| s.text()),
        Some(String::new())
    );

    // Ophelia joins: she gets Hamlet's presence first, then her own (110), Hamlet gets hers.
    let got = join(&mut net, ophelia, "Ophelia");
    assert_eq!(
        from_of(&got, "presence"),
        [format!("{ROOM}/Hamlet"), format!("{ROOM}/Ophelia")]
    );
    let mine = got
        .iter()
        .filter(|e| e.name == "presence")
        .nth(1)
        .expect("own");
    assert_eq!(status_codes(mine), ["110"]);
    assert_eq!(item_attr(mine, "role"), Some("participant"));
    // Semi-anonymous: she does not see Hamlet's real JID, Hamlet (moderator) sees hers.
    let his = got.iter().find(|e| e.name == "presence").expect("hamlet's");
    assert_eq!(item_attr(his, "jid"), None);
    let at_hamlet = net.take_inbox(hamlet);
    let p = at_hamlet
        .iter()
        .find(|e| e.name == "presence")
        .expect("broadcast");
    assert_eq!(p.attr("from"), Some(&*format!("{ROOM}/Ophelia")));
    assert_eq!(item_attr(p, "jid"), Some("ophelia@denmark/castle"));
    assert!(status_codes(p).is_empty());

    // Example 6-8: a group message reaches everyone, the sender too, from room/nick.
    net.send(
        hamlet,
        &el(&format!(
            "<message type='groupchat' to='{ROOM}' xmlns='jabber:client'><subject>Scene I</subject>\
             <body>To be, or not to be</body></message>"
        )),
    );
    for id in [hamlet, ophelia] {
        let got = net.take_inbox(id);
        let m = got.iter().find(|e| e.name == "message").expect("groupchat");
        assert_eq!(m.attr("from"), Some(&*format!("{ROOM}/Hamlet")));
        assert_eq!(m.attr("type"), Some("groupchat"));
        assert_eq!(
            m.get_child("body", "jabber:client")
                .map(|b| b.text())
                .as_deref(),
            Some("To be, or not to be")
        );
    }

    // Example 6-9 / 6-10: private messages.
    net.send(
        hamlet,
        &el(&format!("<message type='chat' to='{ROOM}/Ophelia' xmlns='jabber:client'><body>Soft you now!</body></message>")),
    );
    let got = net.take_inbox(ophelia);
    let m = got.iter().find(|e| e.name == "message").expect("private");
    assert_eq!(m.attr("from"), Some(&*format!("{ROOM}/Hamlet")));
    assert_eq!(m.attr("to"), Some("ophelia@denmark/castle"));
    assert!(net.take_inbox(hamlet).is_empty(), "private means private");
    net.send(
        ophelia,
        &el(&format!(
            "<message type='chat' to='{ROOM}/Nobody' xmlns='jabber:client'><body>?</body></message>"
        )),
    );
    let got = net.take_inbox(ophelia);
    assert_eq!(
        got.first().and_then(error_condition).as_deref(),
        Some("item-not-found")
    );

    // Example 6-5: a presence change is broadcast.
    net.send(
        ophelia,
        &el(&format!("<presence to='{ROOM}/Ophelia' xmlns='jabber:client'><show>away</show><status>Withdrawn</status></presence>")),
    );
    let got = net.take_inbox(hamlet);
    let p = got.iter().find(|e| e.name == "presence").expect("change");
    assert_eq!(
        p.get_child("status", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("Withdrawn")
    );

    // Example 6-11 / 6-12: leaving.
    net.take_inbox(ophelia);
    net.send(
        ophelia,
        &el(&format!(
            "<presence to='{ROOM}/Ophelia' type='unavailable' xmlns='jabber:client'/>"
        )),
    );
    let got = net.take_inbox(ophelia);
    let p = got
        .iter()
        .find(|e| e.name == "presence")
        .expect("confirmation");
    assert_eq!(p.attr("type"), Some("unavailable"));
    assert_eq!(status_codes(p), ["110"]);
    let got = net.take_inbox(hamlet);
    let p = got
        .iter()
        .find(|e| e.name == "presence")
        .expect("leave broadcast");
    assert_eq!(
        (p.attr("type"), p.attr("from")),
        (Some("unavailable"), Some(&*format!("{ROOM}/Ophelia")))
    );
    assert_eq!(item_attr(p, "role"), Some("none"));
    // No longer an occupant: her messages are refused, she gets nothing.
    net.send(
        ophelia,
        &el(&format!("<message type='groupchat' to='{ROOM}' xmlns='jabber:client'><body>hello?</body></message>")),
    );
    let got = net.take_inbox(ophelia);
    assert_eq!(
        got.first().and_then(error_condition).as_deref(),
        Some("not-acceptable")
    );
    assert!(net.take_inbox(hamlet).is_empty());
}

#[test]
fn nick_conflict_and_nick_change() {
    let (mut net, ids) = net_with(config(), &["hamlet", "ophelia", "polonius"]);
    join(&mut net, ids[0], "Hamlet");
    let got = join(&mut net, ids[1], "Hamlet");
    let e = got
        .iter()
        .find(|e| e.name == "presence")
        .expect("error presence");
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(error_condition(e).as_deref(), Some("conflict"));
    assert_eq!(
        e.get_child("error", "jabber:client")
            .and_then(|x| x.attr("code")),
        Some("409")
    );
    join(&mut net, ids[1], "Ophelia");
    net.take_inbox(ids[0]);
    // Nick change: unavailable with 303 and the new nick, then available.
    net.send(
        ids[1],
        &el(&format!(
            "<presence to='{ROOM}/Fair' xmlns='jabber:client'/>"
        )),
    );
    let got = net.take_inbox(ids[0]);
    let ps: Vec<&Element> = got.iter().filter(|e| e.name == "presence").collect();
    assert_eq!(ps.len(), 2, "{got:?}");
    assert_eq!(ps[0].attr("type"), Some("unavailable"));
    assert_eq!(ps[0].attr("from"), Some(&*format!("{ROOM}/Ophelia")));
    assert_eq!(status_codes(ps[0]), ["303"]);
    assert_eq!(item_attr(ps[0], "nick"), Some("Fair"));
    assert_eq!(ps[1].attr("from"), Some(&*format!("{ROOM}/Fair")));
    let own = net.take_inbox(ids[1]);
    let ps: Vec<&Element> = own.iter().filter(|e| e.name == "presence").collect();
    assert_eq!(status_codes(ps[0]), ["110", "303"]);
    assert_eq!(status_codes(ps[1]), ["110"]);
    // Changing to a taken nick is a conflict.
    net.send(
        ids[1],
        &el(&format!(
            "<presence to='{ROOM}/Hamlet' xmlns='jabber:client'/>"
        )),
    );
    let got = net.take_inbox(ids[1]);
    assert_eq!(
        got.first().and_then(error_condition).as_deref(),
        Some("conflict")
    );
    // Join without a nick.
    net.send(
        ids[2],
        &el(&format!("<presence to='{ROOM}' xmlns='jabber:client'/>")),
    );
    let got = net.take_inbox(ids[2]);
    assert_eq!(
        got.first().and_then(error_condition).as_deref(),
        Some("jid-malformed")
    );
}

#[test]
fn history_with_delay_stamps_and_subject_for_late_joiners() {
    let mut cfg = config();
    cfg.muc_history = 2;
    let (mut net, ids) = net_with(cfg, &["hamlet", "ophelia", "polonius"]);
    join(&mut net, ids[0], "Hamlet");
    for i in 1..=3 {
        net.send(
            ids[0],
            &el(&format!("<message type='groupchat' to='{ROOM}' xmlns='jabber:client'><body>line {i}</body></message>")),
        );
    }
    net.send(
        ids[0],
        &el(&format!("<message type='groupchat' to='{ROOM}' xmlns='jabber:client'><subject>Scene I</subject></message>")),
    );
    let got = join(&mut net, ids[1], "Ophelia");
    let msgs: Vec<&Element> = got.iter().filter(|e| e.name == "message").collect();
    assert_eq!(msgs.len(), 3, "two history lines then the subject: {got:?}");
    let bodies: Vec<String> = msgs[..2]
        .iter()
        .filter_map(|m| m.get_child("body", "jabber:client").map(|b| b.text()))
        .collect();
    assert_eq!(bodies, ["line 2", "line 3"]);
    let delay = msgs[0]
        .get_child("delay", "urn:xmpp:delay")
        .expect("stamped");
    assert_eq!(delay.attr("from"), Some(ROOM));
    assert_eq!(delay.attr("stamp"), Some("2023-11-14T22:13:20Z"));
    assert_eq!(msgs[0].attr("to"), Some("ophelia@denmark/castle"));
    assert_eq!(
        msgs[2]
            .get_child("subject", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("Scene I")
    );
    assert_eq!(msgs[2].attr("from"), Some(&*format!("{ROOM}/Hamlet")));
    // maxstanzas='0': no history, still the subject.
    net.send(
        ids[2],
        &el(&format!(
            "<presence to='{ROOM}/Polonius' xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc'>\
             <history maxstanzas='0'/></x></presence>"
        )),
    );
    let got = net.take_inbox(ids[2]);
    let msgs: Vec<&Element> = got.iter().filter(|e| e.name == "message").collect();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].get_child("subject", "jabber:client").is_some());
}

#[test]
fn disconnect_leaves_and_the_last_one_out_destroys_the_room() {
    let (mut net, ids) = net_with(config(), &["hamlet", "ophelia"]);
    join(&mut net, ids[0], "Hamlet");
    join(&mut net, ids[1], "Ophelia");
    net.take_inbox(ids[0]);
    net.server.handle_eof(ids[1], T0);
    net.drive();
    let got = net.take_inbox(ids[0]);
    let p = got
        .iter()
        .find(|e| e.name == "presence")
        .expect("leave broadcast");
    assert_eq!(
        (p.attr("type"), p.attr("from")),
        (Some("unavailable"), Some(&*format!("{ROOM}/Ophelia")))
    );
    // A broadcast unavailable also leaves.
    net.send(
        ids[0],
        &el("<presence type='unavailable' xmlns='jabber:client'/>"),
    );
    net.take_inbox(ids[0]);
    let r = net.iq(
        ids[0],
        "<iq type='get' id='d' to='conference.denmark' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert_eq!(
        r.get_child("query", "http://jabber.org/protocol/disco#items")
            .map(|q| q.elements().count()),
        Some(0),
        "temporary room destroyed"
    );
    // Joining again creates it anew (201).
    let got = join(&mut net, ids[0], "Hamlet");
    let own = got.iter().find(|e| e.name == "presence").expect("own");
    assert_eq!(status_codes(own), ["110", "201"]);
}

#[test]
fn guide_invite_and_mediated_invite() {
    let (mut net, ids) = net_with(config(), &["ghost", "hamlet"]);
    net.send(ids[1], &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(ids[1]);
    // The guide: anyone may ask the room to invite someone with `invite:` in the subject.
    net.send(
        ids[0],
        &el("<message to='act1@conference.denmark' xmlns='jabber:client'><subject>invite:hamlet@denmark</subject>\
             <body>Pity me not, but lend thy serious hearing</body></message>"),
    );
    let got = net.take_inbox(ids[1]);
    let m = got
        .iter()
        .find(|e| e.name == "message")
        .expect("invitation");
    assert_eq!(m.attr("from"), Some("act1@conference.denmark"));
    assert_eq!(
        m.get_child("x", "jabber:x:conference")
            .and_then(|x| x.attr("jid")),
        Some("act1@conference.denmark")
    );
    assert!(m.get_child("body", "jabber:client").is_some());
    let invite = m
        .get_child("x", MUC_USER)
        .and_then(|x| x.get_child("invite", MUC_USER))
        .expect("XEP-0045 invite too");
    assert_eq!(invite.attr("from"), Some("ghost@denmark/castle"));
    // XEP-0045 mediated invitation.
    net.send(
        ids[0],
        &el(&format!(
            "<message to='{ROOM}' xmlns='jabber:client'><x xmlns='{MUC_USER}'><invite to='hamlet@denmark'>\
             <reason>Come</reason></invite></x></message>"
        )),
    );
    let got = net.take_inbox(ids[1]);
    let m = got
        .iter()
        .find(|e| e.name == "message")
        .expect("mediated invitation");
    assert_eq!(
        m.get_child("x", "jabber:x:conference")
            .and_then(|x| x.attr("jid")),
        Some(ROOM)
    );
}

#[test]
fn guide_join_messages_when_configured() {
    let mut cfg = config();
    cfg.muc_join_messages = true;
    let (mut net, ids) = net_with(cfg, &["hamlet", "claudius"]);
    join(&mut net, ids[0], "Hamlet");
    join(&mut net, ids[1], "Claudius");
    let got = net.take_inbox(ids[0]);
    let m = got
        .iter()
        .find(|e| e.name == "message")
        .expect("join message");
    assert_eq!(m.attr("from"), Some(ROOM));
    assert_eq!(
        m.get_child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref(),
        Some("Claudius has arrived.")
    );
    net.send(
        ids[1],
        &el(&format!(
            "<presence to='{ROOM}/Claudius' type='unavailable' xmlns='jabber:client'/>"
        )),
    );
    let got = net.take_inbox(ids[0]);
    assert!(got.iter().any(|m| {
        m.get_child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref()
            == Some("Claudius has left.")
    }));
}

#[test]
fn service_and_room_discovery_and_limits() {
    let mut cfg = config();
    cfg.muc_max_occupants = 1;
    let (mut net, ids) = net_with(cfg, &["hamlet", "ophelia"]);
    let r = net.iq(
        ids[0],
        "<iq type='get' id='i' to='conference.denmark' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("info");
    let id = q
        .elements()
        .find(|e| e.name == "identity")
        .expect("identity");
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("conference"), Some("text"))
    );
    assert!(
        q.elements()
            .any(|f| f.attr("var") == Some("http://jabber.org/protocol/muc"))
    );
    join(&mut net, ids[0], "Hamlet");
    let r = net.iq(
        ids[0],
        &format!("<iq type='get' id='ri' to='{ROOM}' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    );
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("room info");
    assert!(q.elements().any(|f| f.attr("var") == Some("muc_temporary")));
    // The owner accepts the default configuration (instant room).
    let r = net.iq(
        ids[0],
        &format!(
            "<iq type='set' id='cfg' to='{ROOM}' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"));
    // The room is full.
    let got = join(&mut net, ids[1], "Ophelia");
    assert_eq!(
        got.first().and_then(error_condition).as_deref(),
        Some("service-unavailable")
    );
    // Unknown room.
    let r = net.iq(
        ids[1],
        "<iq type='get' id='x' to='nowhere@conference.denmark' xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}
