//! lablink-core
