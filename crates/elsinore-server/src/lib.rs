//! elsinore-server
