//! elsinore-stream
