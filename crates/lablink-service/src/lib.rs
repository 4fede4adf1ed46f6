//! lablink-service
