//! Drivers against scripted buses: each test states the exact bytes, pin changes and delays a
//! read must produce, and fails if the driver did anything else.

mod current_loop;
mod flow_meter;
mod modbus;
mod pulse;
mod support;
mod turbidity;
mod ultrasonic;
