//! Standard input and output for the MCP server.
//!
//! tokio's `stdin()` and `stdout()` hand every read and write to a blocking
//! thread, since a terminal or a file cannot be polled. An MCP client runs
//! the server with pipes, which can: where standard input and output are
//! pipes, they are read and written straight from the async workers, with
//! no thread hop per message. Anything else (a terminal, a file, a socket)
//! keeps tokio's blocking streams.

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;

/// The server's input stream.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// The server's output stream.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// Standard input and output, polled directly where they are pipes.
///
/// A pipe is switched to non-blocking mode. That mode belongs to the pipe
/// end this process was given, which the client does not share: the client
/// writes to the other end. Processes the server starts get no standard
/// input of its own and their own pipes for output.
pub fn streams() -> (Input, Output) {
    let input: Input = match std::io::stdin().as_fd().try_clone_to_owned().map(std::fs::File::from).and_then(pipe::Receiver::from_file) {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let output: Output = match std::io::stdout().as_fd().try_clone_to_owned().map(std::fs::File::from).and_then(pipe::Sender::from_file) {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (input, output)
}
