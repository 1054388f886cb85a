//! Test harness (filled below).
