//! libFuzzer entry point for [`ordinaut_fuzz::rrule`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::rrule(data));
