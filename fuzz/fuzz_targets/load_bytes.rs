//! The loader on arbitrary bytes: an error or a model that round-trips, never a crash.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = transfuse_fuzz::check_load(data) {
        panic!("{finding}");
    }
});
