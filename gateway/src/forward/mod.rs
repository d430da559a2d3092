//! Copies stored readings elsewhere, following the store's commit order with a durable cursor.

pub mod influx;
