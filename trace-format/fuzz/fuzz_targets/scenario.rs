//! Fuzzes scenario input: arbitrary bytes as TOML (what the host reads) and
//! as postcard (what the guest decodes) must validate or be refused, never
//! panic; the size checks must agree with the encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trace_format::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(sc) = Scenario::parse_toml(text)
    {
        let _ = sc.validate_all();
        let _ = sc.guest_capacity_error();
    }
    if let Ok(sc) = postcard::from_bytes::<Scenario>(data) {
        let _ = sc.validate();
        let _ = sc.guest_capacity_error();
    }
});
