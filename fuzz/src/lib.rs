//! What both fuzz targets share.

/// libFuzzer's panic hook aborts on every panic, even one the code under test catches and
/// turns into an error (as the service does with rxing's). It is replaced by a silent one, so
/// only a panic that escapes, which aborts at the FFI boundary, counts as a crash.
pub fn quiet_caught_panics() {
    let _libfuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
}
