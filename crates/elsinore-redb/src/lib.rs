//! elsinore-redb
