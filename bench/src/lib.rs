//! Shared helpers for Ordinaut benchmark binaries.
