//! libFuzzer entry point for [`ordinaut_fuzz::template`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::template(data));
