//! Mandate's integration tests, one binary (see the table of contents below).
