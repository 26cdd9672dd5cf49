//! The capabilities the D-Bus faces are handed: each has one owner.

pub mod core;
pub mod notices;
