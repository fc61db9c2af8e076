//! libFuzzer entry point for [`ordinaut_fuzz::cron`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::cron(data));
