//! The D-Bus faces: what callers see. Each face checks who is calling,
//! then hands the work to the services and rules below it.

pub mod account;
pub mod admin;
pub mod bus;
#[cfg(test)]
pub mod fixture;
pub mod login;
pub mod qr;
