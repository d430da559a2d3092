//! Any bytes as a binary payload (the seeds start with the version byte): no decoder panics,
//! and whatever decodes encodes back to the same message, in binary and in JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir_contract_fuzz::every_decoder(data);
});
