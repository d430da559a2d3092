//! Placeholder: this crate is being written.
#![no_std]
