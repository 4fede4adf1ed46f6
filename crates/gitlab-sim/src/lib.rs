//! gitlab-sim
