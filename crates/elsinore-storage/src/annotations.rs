//! XEP-0145 Annotations: notes about JIDs, stored as one `<storage xmlns='storage:rosternotes'>`
//! bundle in XEP-0049 private storage.
//!
//! The model is strict where data would otherwise be lost silently: a bundle with a note
//! whose `jid` is not a JID or whose `cdate` / `mdate` is not an XEP-0082 DateTime does not
//! parse ([`AnnotationsError`]), so a client never rewrites a bundle it could not read.
//! Dates are kept as Unix milliseconds (UTC) and written canonically
//! (`2004-09-24T15:23:21Z`, milliseconds only when not zero). Time is always passed in.
//!
//! At most one note per bare JID (XEP-0145 §2): a `jid` with a resource names its bare JID;
//! when an incoming bundle holds several notes for one bare JID, the one with the latest
//! `mdate` (else `cdate`) wins, a later note winning ties and undated notes; the survivor
//! takes the position of the first of them.

use alloc::{string::String, string::ToString, vec::Vec};
use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::datetime::{DateTimeError, format_datetime_ms, parse_datetime_ms};
use elsinore_xml::{Attr, Element, Node};

/// The `storage:rosternotes` namespace.
pub const NS: &str = "storage:rosternotes";

/// Most notes in one bundle.
pub const MAX_NOTES: usize = 10_000;

/// A note about one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The entity (bare JID).
    pub jid: BareJid,
    /// The note's text.
    pub text: String,
    /// Creation time, Unix milliseconds UTC (negative before 1970).
    pub cdate: Option<i64>,
    /// Last modification time, Unix milliseconds UTC (negative before 1970).
    pub mdate: Option<i64>,
    /// Attributes other than `jid`, `cdate` and `mdate` (an `xml:lang`, another client's
    /// extension), kept so that rewriting the bundle does not lose them.
    extra_attrs: Vec<Attr>,
    /// Child elements of the note (XEP-0145 has none; another client's extension), kept
    /// for the same reason.
    extra_children: Vec<Element>,
}

impl Note {
    fn stamp(&self) -> Option<i64> {
        self.mdate.or(self.cdate)
    }
}

/// Why a bundle cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationsError {
    /// Not a `<storage xmlns='storage:rosternotes'/>` element.
    NotStorage,
    /// A `<note/>` without `jid`.
    MissingJid,
    /// A `jid` that is not a valid JID.
    BadJid(String),
    /// A `cdate` or `mdate` that is not an XEP-0082 DateTime.
    BadDate {
        /// The note's `jid`.
        jid: String,
        /// `cdate` or `mdate`.
        attr: &'static str,
        /// What is wrong.
        error: DateTimeError,
    },
    /// More than [`MAX_NOTES`] notes.
    TooMany,
}

impl core::fmt::Display for AnnotationsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AnnotationsError::NotStorage => f.write_str("not a storage:rosternotes bundle"),
            AnnotationsError::MissingJid => f.write_str("a note without jid"),
            AnnotationsError::BadJid(j) => write!(f, "note jid {j:?} is not a JID"),
            AnnotationsError::BadDate { jid, attr, error } => {
                write!(f, "note for {jid}: {attr}: {error}")
            }
            AnnotationsError::TooMany => write!(f, "more than {MAX_NOTES} notes"),
        }
    }
}

impl core::error::Error for AnnotationsError {}

/// All notes of an account, at most one per bare JID, in bundle order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    notes: Vec<Note>,
    /// Children of `<storage/>` other than notes, written back after them unchanged.
    others: Vec<Element>,
}

impl Annotations {
    /// No notes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a `<storage xmlns='storage:rosternotes'>` bundle (see the module docs for
    /// duplicates and strictness). Elements other than `<note/>`, and a note's attributes
    /// and children beyond XEP-0145's, are kept as they are and written back by
    /// [`to_element`](Self::to_element).
    pub fn parse(storage: &Element) -> Result<Annotations, AnnotationsError> {
        if !storage.is("storage", NS) {
            return Err(AnnotationsError::NotStorage);
        }
        let mut out = Annotations::new();
        out.others = storage
            .elements()
            .filter(|e| !e.is("note", NS))
            .cloned()
            .collect();
        for el in storage.elements().filter(|e| e.is("note", NS)) {
            let raw = el.attr("jid").ok_or(AnnotationsError::MissingJid)?;
            let jid = Jid::parse(raw)
                .map_err(|_| AnnotationsError::BadJid(raw.to_string()))?
                .to_bare();
            let date = |attr: &'static str| -> Result<Option<i64>, AnnotationsError> {
                el.attr(attr)
                    .map(|v| {
                        parse_datetime_ms(v).map_err(|error| AnnotationsError::BadDate {
                            jid: raw.to_string(),
                            attr,
                            error,
                        })
                    })
                    .transpose()
            };
            let note = Note {
                jid,
                text: el.text(),
                cdate: date("cdate")?,
                mdate: date("mdate")?,
                extra_attrs: el
                    .attrs
                    .iter()
                    .filter(|a| !(a.ns.is_empty() && matches!(&*a.name, "jid" | "cdate" | "mdate")))
                    .cloned()
                    .collect(),
                extra_children: el.elements().cloned().collect(),
            };
            match out.notes.iter_mut().find(|n| n.jid == note.jid) {
                Some(existing) => {
                    if note.stamp() >= existing.stamp() {
                        *existing = note;
                    }
                }
                None => {
                    if out.notes.len() >= MAX_NOTES {
                        return Err(AnnotationsError::TooMany);
                    }
                    out.notes.push(note);
                }
            }
        }
        Ok(out)
    }

    /// The bundle, dates written canonically in UTC.
    pub fn to_element(&self) -> Element {
        let mut storage = Element::new("storage", NS);
        for n in &self.notes {
            let mut el = Element::new("note", NS).with_attr("jid", n.jid.to_string());
            if let Some(c) = n.cdate {
                el.set_attr("cdate", format_datetime_ms(c));
            }
            if let Some(m) = n.mdate {
                el.set_attr("mdate", format_datetime_ms(m));
            }
            el.attrs.extend(n.extra_attrs.iter().cloned());
            if !n.text.is_empty() {
                el.children.push(Node::Text(n.text.clone()));
            }
            el.children
                .extend(n.extra_children.iter().cloned().map(Node::Element));
            storage.children.push(Node::Element(el));
        }
        storage
            .children
            .extend(self.others.iter().cloned().map(Node::Element));
        storage
    }

    /// Every note, in bundle order.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The note about `jid`.
    pub fn get(&self, jid: &BareJid) -> Option<&Note> {
        self.notes.iter().find(|n| n.jid == *jid)
    }

    /// Add a note about `jid` (created and modified `now_ms`) or update its text (modified
    /// `now_ms`, creation time kept). Fails only when a new note would exceed [`MAX_NOTES`].
    pub fn set_note(
        &mut self,
        jid: BareJid,
        text: impl Into<String>,
        now_ms: u64,
    ) -> Result<&Note, AnnotationsError> {
        let text = text.into();
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let pos = match self.notes.iter().position(|n| n.jid == jid) {
            Some(pos) => {
                let n = &mut self.notes[pos];
                n.text = text;
                n.mdate = Some(now_ms);
                pos
            }
            None => {
                if self.notes.len() >= MAX_NOTES {
                    return Err(AnnotationsError::TooMany);
                }
                self.notes.push(Note {
                    jid,
                    text,
                    cdate: Some(now_ms),
                    mdate: Some(now_ms),
                    extra_attrs: Vec::new(),
                    extra_children: Vec::new(),
                });
                self.notes.len() - 1
            }
        };
        // In range: found or just pushed above.
        Ok(&self.notes[pos])
    }

    /// Remove the note about `jid`.
    pub fn remove(&mut self, jid: &BareJid) -> Option<Note> {
        let pos = self.notes.iter().position(|n| n.jid == *jid)?;
        Some(self.notes.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(xml: &str) -> Result<Annotations, AnnotationsError> {
        Annotations::parse(&Element::parse(xml.as_bytes()).expect("test XML"))
    }

    fn bare(s: &str) -> BareJid {
        BareJid::parse(s).expect("valid")
    }

    #[test]
    fn example_1_parses_and_writes_canonically() {
        let a = parse(
            "<storage xmlns='storage:rosternotes'>\
             <note jid='hamlet@shakespeare.lit' mdate='2004-09-24T15:23:21Z'>Seems to be a good writer</note>\
             <note jid='juliet@capulet.com' mdate='2004-09-28T12:43:12Z'>Oh my sweetest love ...</note>\
             </storage>",
        )
        .expect("parses");
        assert_eq!(a.notes().len(), 2);
        let h = a.get(&bare("hamlet@shakespeare.lit")).expect("hamlet");
        assert_eq!(h.text, "Seems to be a good writer");
        assert_eq!(h.mdate, Some(1_096_039_401_000));
        let out = a.to_element();
        let first = out.elements().next().expect("note");
        assert_eq!(first.attr("mdate"), Some("2004-09-24T15:23:21Z"));
        assert_eq!(Annotations::parse(&out), Ok(a));
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let a = parse(
            "<storage xmlns='storage:rosternotes'>\
             <note jid='a@b' cdate='2004-09-24T17:23:21+02:00'/></storage>",
        )
        .expect("parses");
        let out = a.to_element();
        let note = out.elements().next().expect("note");
        assert_eq!(note.attr("cdate"), Some("2004-09-24T15:23:21Z"));
    }

    #[test]
    fn dates_before_1970_are_kept() {
        // XEP-0082's own example date.
        let a = parse(
            "<storage xmlns='storage:rosternotes'>\
             <note jid='neil@nasa.example' cdate='1969-07-21T02:56:15Z'>first step</note></storage>",
        )
        .expect("parses");
        let n = a.get(&bare("neil@nasa.example")).expect("note");
        assert_eq!(n.cdate, Some(-14_159_025_000));
        let out = a.to_element();
        let note = out.elements().next().expect("note");
        assert_eq!(note.attr("cdate"), Some("1969-07-21T02:56:15Z"));
    }

    #[test]
    fn strict_dates_and_jids() {
        for bad in [
            "2004-09-24 15:23:21Z",
            "2004-09-24T15:23:21",
            "2004-02-30T15:23:21Z",
            "2004-09-24T24:00:00Z",
            "04-09-24T15:23:21Z",
        ] {
            let r = parse(&format!(
                "<storage xmlns='storage:rosternotes'><note jid='a@b' mdate='{bad}'/></storage>"
            ));
            assert!(
                matches!(r, Err(AnnotationsError::BadDate { attr: "mdate", .. })),
                "{bad}: {r:?}"
            );
        }
        assert!(matches!(
            parse("<storage xmlns='storage:rosternotes'><note jid='@'/></storage>"),
            Err(AnnotationsError::BadJid(_))
        ));
        assert_eq!(
            parse("<storage xmlns='storage:rosternotes'><note/></storage>"),
            Err(AnnotationsError::MissingJid)
        );
        assert_eq!(
            parse("<storage xmlns='storage:bookmarks'/>"),
            Err(AnnotationsError::NotStorage)
        );
    }

    #[test]
    fn duplicates_keep_the_latest_note_at_the_first_position() {
        let a = parse(
            "<storage xmlns='storage:rosternotes'>\
             <note jid='romeo@montague.lit' mdate='2004-09-25T00:00:00Z'>newer</note>\
             <note jid='nurse@capulet.lit'>nurse</note>\
             <note jid='romeo@montague.lit/orchard' mdate='2004-09-24T00:00:00Z'>older</note>\
             <note jid='nurse@capulet.lit'>nurse again</note>\
             </storage>",
        )
        .expect("parses");
        let texts: Vec<&str> = a.notes().iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts, ["newer", "nurse again"]);
        assert_eq!(a.notes()[0].jid, bare("romeo@montague.lit"));
    }

    /// What another client (or a later XEP-0145 revision) put in the bundle survives a
    /// read-modify-write through this model: extra attributes and children of a note,
    /// and other elements in `<storage/>`.
    #[test]
    fn unknown_data_survives_an_update() {
        let mut a = parse(
            "<storage xmlns='storage:rosternotes'>\
             <note jid='hamlet@shakespeare.lit' xml:lang='en' x:prio='1' xmlns:x='urn:example:x'>\
             Seems to be a good writer<x:tag>poet</x:tag></note>\
             <group xmlns='urn:example:groups' name='court'/>\
             </storage>",
        )
        .expect("parses");
        let hamlet = bare("hamlet@shakespeare.lit");
        a.set_note(hamlet.clone(), "A fine writer", 2_000)
            .expect("updated");
        a.set_note(bare("ophelia@shakespeare.lit"), "Flowers", 2_000)
            .expect("added");
        let out = a.to_element();
        let note = out
            .elements()
            .find(|n| n.attr("jid") == Some("hamlet@shakespeare.lit"))
            .expect("note");
        assert_eq!(note.lang(), Some("en"));
        assert!(
            note.attrs
                .iter()
                .any(|at| at.ns == "urn:example:x" && at.name == "prio" && at.value == "1")
        );
        assert_eq!(
            note.get_child("tag", "urn:example:x")
                .map(|t| t.text())
                .as_deref(),
            Some("poet")
        );
        assert_eq!(note.text(), "A fine writer");
        assert!(out.get_child("group", "urn:example:groups").is_some());
        // And it reads back the same.
        let back = Annotations::parse(&Element::parse(&out.to_bytes()).expect("reparses"));
        assert_eq!(back, Ok(a));
    }

    #[test]
    fn set_update_remove() {
        let mut a = Annotations::new();
        let romeo = bare("romeo@montague.lit");
        a.set_note(romeo.clone(), "a", 1_000).expect("added");
        let n = a.set_note(romeo.clone(), "b", 2_000).expect("updated");
        assert_eq!(
            (n.text.as_str(), n.cdate, n.mdate),
            ("b", Some(1_000), Some(2_000))
        );
        assert_eq!(a.notes().len(), 1);
        assert_eq!(a.remove(&romeo).map(|n| n.text), Some("b".into()));
        assert!(a.notes().is_empty());
        assert_eq!(a.remove(&romeo), None);
    }

    proptest! {
        #[test]
        fn round_trip(notes in prop::collection::vec(
            ("[a-z]{1,8}", "[ -~<>&'\"é]{0,20}",
             prop::option::of(-62_167_219_200_000i64..253_402_300_799_000),
             prop::option::of(-62_167_219_200_000i64..253_402_300_799_000)), 0..8))
        {
            let mut a = Annotations::new();
            for (local, text, cdate, mdate) in notes {
                let jid = bare(&format!("{local}@example.com"));
                if a.get(&jid).is_some() { continue; }
                a.notes.push(Note {
                    jid,
                    text,
                    cdate,
                    mdate,
                    extra_attrs: Vec::new(),
                    extra_children: Vec::new(),
                });
            }
            let bytes = a.to_element().to_bytes();
            let back = Annotations::parse(&Element::parse(&bytes).expect("reparses"));
            prop_assert_eq!(back, Ok(a));
        }
    }
}
