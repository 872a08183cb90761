//! elsinore-tokio
