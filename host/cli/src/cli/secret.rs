//! Reading a secret's value for `toolshed secret set`: from the terminal
//! with echo off, or from stdin when it is not a terminal.

use std::io::{BufRead, IsTerminal, Write};

/// Terminal echo switched off until dropped.
struct NoEcho {
    saved: libc::termios,
}

impl NoEcho {
    fn new() -> Option<NoEcho> {
        // SAFETY: termios is plain data, filled in by tcgetattr on stdin.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: sets stdin's attributes from a copy of its own.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) } != 0 {
            return None;
        }
        Some(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// The value of secret `name`: one line typed without echo at a terminal,
/// or stdin up to its first line break when piped.
///
/// # Errors
///
/// When nothing, or an empty value, was given.
pub fn read_value(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("value of {name} (not shown): ");
        std::io::stderr().flush()?;
        let _quiet = NoEcho::new().ok_or_else(|| anyhow::anyhow!("cannot turn off the terminal's echo; pipe the value on stdin instead"))?;
        stdin.lock().read_line(&mut line)?;
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let value = line.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        anyhow::bail!("no value given for secret {name}");
    }
    Ok(value)
}
