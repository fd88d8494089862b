//! Signals to the processes the harness (or its caller) started: real kill(2), as an operator
//! or a crash would send them.

pub use libc::{SIGCONT, SIGINT, SIGKILL, SIGSTOP, SIGTERM};

/// Sends `sig` to process `pid`; an error says why not (it is gone, or not ours).
pub fn send_signal(pid: u32, sig: libc::c_int) -> Result<(), String> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(format!("{pid} is not a process id"));
    };
    // SAFETY: kill(2) has no memory effects; a positive pid names one process.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}
