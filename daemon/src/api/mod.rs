//! The D-Bus faces: what callers see (on the system bus, and `Login1` on
//! the login socket too). Each face checks who is calling,
//! then hands the work to the services and rules below it.

pub mod account;
pub mod admin;
pub mod bus;
#[cfg(test)]
pub mod fixture;
pub mod fleet;
pub mod login;
pub mod login_socket;
pub mod qr;
pub mod requests;
