//! lablink-web
