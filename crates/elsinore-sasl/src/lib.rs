//! elsinore-sasl
