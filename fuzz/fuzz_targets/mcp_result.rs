//! libFuzzer entry point for [`ordinaut_fuzz::mcp_result`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordinaut_fuzz::mcp_result(data));
