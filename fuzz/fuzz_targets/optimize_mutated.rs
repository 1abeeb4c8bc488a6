//! The optimizer on structurally mutated tiny models: no crash, a valid output, and the same
//! results as the original wherever the original runs in the reference interpreter.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = transfuse_fuzz::check_optimize(data) {
        panic!("{finding}");
    }
});
