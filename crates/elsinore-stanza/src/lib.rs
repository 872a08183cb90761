//! elsinore-stanza
