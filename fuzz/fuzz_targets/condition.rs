//! libFuzzer entry point for [`ordinaut_fuzz::condition`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::condition(data));
