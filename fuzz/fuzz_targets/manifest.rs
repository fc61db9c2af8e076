//! libFuzzer entry point for [`ordinaut_fuzz::manifest`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::manifest(data));
