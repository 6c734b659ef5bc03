//! Where the optimizing compile runs: in this process, or in a child.
//!
//! Cranelift parses the plugin's untrusted bytes and, for a few hundred
//! milliseconds (seconds for a language runtime), allocates heavily and
//! runs megabytes of code that a server then never runs again. In a child
//! process all of that ends with the child: the server keeps no compiler
//! code resident and no allocator pages the compile left behind (about
//! 13 MiB after a cold start; docs/performance.md), and a compiler fault
//! ends the child, not the server. The child writes wasmtime's serialized
//! artifact to its standard output, and the server loads it as it loads a
//! cache entry. Whatever goes wrong in the child (it cannot start, fails,
//! or answers an artifact this engine refuses), the compile runs here
//! instead, as it always did.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::engine::PoolSize;

/// Compiles components for an engine configured as [`crate::engine::build`]
/// configures it, somewhere other than this process.
pub trait OutOfProcessCompiler: Send + Sync {
    /// wasmtime's serialized artifact of the component `wasm`.
    ///
    /// # Errors
    ///
    /// When the compile fails or cannot be run.
    fn precompile(&self, wasm: &[u8]) -> anyhow::Result<Vec<u8>>;
}

/// The most a child's artifact may be: well past what any plugin within
/// the host's limits compiles to (an 18 MB Python component gives about
/// 60 MB), so a runaway child cannot make the server buffer without end.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// Runs `PROGRAM ARGS --calls N --memory-bytes M`, the component on its
/// standard input and the artifact on its standard output: the `toolshed`
/// executable's `precompile` command, which answers with
/// [`precompile_stdio`].
pub struct ChildCompiler {
    program: PathBuf,
    args: Vec<String>,
    pool: PoolSize,
}

impl ChildCompiler {
    /// A compiler that runs `program` with `args`, then the pool's size.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, pool: PoolSize) -> Self {
        Self { program: program.into(), args, pool }
    }
}

impl OutOfProcessCompiler for ChildCompiler {
    fn precompile(&self, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg("--calls")
            .arg(self.pool.concurrent_calls.to_string())
            .arg("--memory-bytes")
            .arg(self.pool.memory_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        // The child reads all of its input before it writes, so writing
        // first and reading after cannot deadlock.
        let written = child.stdin.take().context("the compiler's input")?.write_all(wasm);
        let mut artifact = Vec::new();
        let read = child.stdout.take().context("the compiler's output")?.take(MAX_ARTIFACT_BYTES + 1).read_to_end(&mut artifact);
        let status = child.wait()?;
        written.context("writing the component to the compiler")?;
        read.context("reading the compiler's artifact")?;
        anyhow::ensure!(status.success(), "the compiler process failed ({status})");
        anyhow::ensure!(artifact.len() as u64 <= MAX_ARTIFACT_BYTES, "the compiler's artifact is over {MAX_ARTIFACT_BYTES} bytes");
        Ok(artifact)
    }
}

/// The child's side: reads a component from `input`, compiles it for the
/// engine `pool` configures, and writes the artifact to `output`.
///
/// # Errors
///
/// When the input cannot be read, the component does not compile, or the
/// output cannot be written.
pub fn precompile_stdio(pool: &PoolSize, input: &mut impl Read, output: &mut impl Write) -> anyhow::Result<()> {
    let mut wasm = Vec::new();
    input.read_to_end(&mut wasm).context("reading the component")?;
    let (engine, _epoch) = crate::engine::build(pool)?;
    let artifact = engine.precompile_component(&wasm)?;
    output.write_all(&artifact).context("writing the artifact")?;
    output.flush().context("writing the artifact")
}
