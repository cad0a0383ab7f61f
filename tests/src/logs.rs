//! Captures every log line the functions write during a test binary's run, so tests
//! can prove that no token or secret ever reaches the logs.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the same JSON format as production, at debug level, into the buffer.
pub fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(|| Capture)
            .try_init();
    });
}

pub fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().expect("log buffer")).into_owned()
}
