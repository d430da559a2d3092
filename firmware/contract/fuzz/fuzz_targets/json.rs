//! Any bytes as a JSON payload: no decoder panics, whatever decodes encodes back to the same
//! message, and the gateway's and a node's JSON parsers agree on telemetry.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir_contract_fuzz::every_decoder(data);
    weir_contract_fuzz::json_parsers_agree(data);
});
