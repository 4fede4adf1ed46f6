//! lablink-gitlab
