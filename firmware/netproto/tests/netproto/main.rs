//! The protocols against byte vectors written out from their specifications, and against
//! arbitrary input: every message a test builds is compared byte by byte, every refusal names
//! its reason, and no input makes a parser panic.

mod dhcp;
mod dns;
mod mqtt;
mod properties;
mod sntp;
