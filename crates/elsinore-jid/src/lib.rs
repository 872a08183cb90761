//! elsinore-jid
