//! elsinore-storage
