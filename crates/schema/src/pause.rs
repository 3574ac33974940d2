//! Named pause points for crash tests: when the environment variable `CRMKPI_PAUSE_AT` names a
//! point, the process announces it on stderr and waits there forever, so a test can kill it
//! with SIGKILL at exactly that moment. Unset (always, in production) it does nothing.

use std::time::Duration;

/// The environment variable that names the point to pause at.
pub const PAUSE_VARIABLE: &str = "CRMKPI_PAUSE_AT";

/// Pauses forever at `point` when `CRMKPI_PAUSE_AT` names it.
pub fn pause_at(point: &str) {
    if std::env::var(PAUSE_VARIABLE).is_ok_and(|wanted| wanted == point) {
        eprintln!("crmkpi: paused at {point}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
