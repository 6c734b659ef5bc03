//! Building a plugin project of any language into a packed component: its
//! language's toolchain, then the docs and API version embedded
//! (`toolshed_pack::pack`). A Python or JavaScript build is kept in a cache
//! by the hash of its sources, so CI and a second run skip the slow
//! toolchains (seconds each) when nothing changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::new::Language;

/// A plugin project: where it is, its language, its plugin name and world.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory.
    pub dir: PathBuf,
    /// Its language, told by its files.
    pub language: Language,
    /// The plugin's name: its WIT package's name (`plugins:NAME`).
    pub name: String,
    /// Its world, fully named (`plugins:NAME/WORLD@VERSION`).
    pub world: String,
}

impl Project {
    /// Reads the project in `dir`.
    ///
    /// # Errors
    ///
    /// When no language's files are there, or the WIT has no single world.
    pub fn open(dir: &Path) -> anyhow::Result<Project> {
        // Absolute, since the toolchain runs in the project directory.
        let dir = &dir.canonicalize().with_context(|| format!("reading {}", dir.display()))?;
        let language = if dir.join("Cargo.toml").exists() {
            Language::Rust
        } else if dir.join("app.py").exists() {
            Language::Python
        } else if dir.join("package.json").exists() {
            Language::Javascript
        } else {
            bail!("{} is not a plugin project: it has no Cargo.toml, app.py or package.json (make one with `toolshed new`)", dir.display());
        };
        let mut resolve = wit_parser::Resolve::default();
        let wit = dir.join("wit");
        let (package, _) = resolve.push_dir(&wit).with_context(|| format!("parsing the WIT in {}", wit.display()))?;
        let world = resolve.select_world(&[package], None).with_context(|| format!("choosing the world of {}", wit.display()))?;
        let name = resolve.packages[package].name.name.clone();
        let world = resolve.id_of_name(package, &resolve.worlds[world].name);
        Ok(Project { dir: dir.to_path_buf(), language, name, world })
    }

    /// Where the packed plugin is written: `build/NAME.wasm`.
    pub fn output(&self) -> PathBuf {
        self.dir.join("build").join(format!("{}.wasm", self.name))
    }

    /// Builds and packs the plugin; returns its bytes and whether a
    /// toolchain ran. A Python or JavaScript build whose sources are those
    /// of an earlier one is taken from the build cache ([`cache_dir`]).
    ///
    /// # Errors
    ///
    /// When the toolchain is missing or fails, naming how to install it.
    pub fn build(&self) -> anyhow::Result<(Vec<u8>, bool)> {
        let output = self.output();
        std::fs::create_dir_all(output.parent().expect("build/ is in the project"))?;
        if self.language == Language::Rust {
            // cargo keeps its own incremental cache, and toolshed-pack packs.
            let guest = toolshed_pack::Guest { wit: "wit", output: &self.name, ..toolshed_pack::Guest::new(&self.name, &self.world) };
            let built = toolshed_pack::build_plugin(&self.dir, &self.dir.join("target"), &self.dir.join("build"), &guest)?;
            return Ok((std::fs::read(built)?, true));
        }
        let cached = match cache_dir() {
            Some(dir) => Some(dir.join(format!("{}.wasm", self.source_hash()?))),
            None => None,
        };
        let (component, rebuilt) = match cached.as_ref().and_then(|path| std::fs::read(path).ok()) {
            Some(bytes) => (bytes, false),
            None => {
                let bytes = self.componentize(&output)?;
                if let Some(path) = &cached {
                    // A cache that cannot be written only costs the next build.
                    let _ = std::fs::create_dir_all(path.parent().expect("a cache entry is in the cache"));
                    let _ = std::fs::write(path, &bytes);
                }
                (bytes, true)
            }
        };
        let packed = toolshed_pack::pack(component, &self.dir.join("wit"), Some(&self.world))?;
        std::fs::write(&output, &packed).with_context(|| format!("writing {}", output.display()))?;
        Ok((packed, rebuilt))
    }

    /// Runs the language's toolchain, writing the component to `output`.
    fn componentize(&self, output: &Path) -> anyhow::Result<Vec<u8>> {
        let (mut command, toolchain) = match self.language {
            Language::Python => {
                let mut command = Command::new(self.tool(".venv/bin/componentize-py", "componentize-py"));
                command.args(["-d", "wit", "-w", &self.world, "componentize", "app", "-o"]).arg(output);
                (command, "componentize-py")
            }
            Language::Javascript => {
                let mut command = Command::new(self.tool("node_modules/.bin/componentize-js", "componentize-js"));
                // The host does not provide wasi:http, which componentize-js's
                // http and fetch-event features import by default.
                command.args(["app.js", "-w", "wit", "-n", &self.world, "--disable", "http", "--disable", "fetch-event", "-o"]).arg(output);
                (command, "componentize-js")
            }
            Language::Rust => unreachable!("Rust builds through toolshed-pack"),
        };
        let install = match self.language {
            Language::Python => "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
            _ => "npm ci",
        };
        let status = command
            .current_dir(&self.dir)
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run {toolchain} ({e}); install it in {}: {install}", self.dir.display()))?;
        if !status.success() {
            bail!("{toolchain} failed to build {} ({status})", self.dir.display());
        }
        std::fs::read(output).with_context(|| format!("reading {}", output.display()))
    }

    /// The project's own copy of a tool when it has one, else the one on PATH.
    fn tool(&self, local: &str, on_path: &str) -> PathBuf {
        let local = self.dir.join(local);
        if local.exists() { local } else { PathBuf::from(on_path) }
    }

    /// SHA-256 over every source file's path and contents (links followed,
    /// so the toolshed WIT under `wit/deps` counts), leaving out what builds
    /// and installs write.
    fn source_hash(&self) -> anyhow::Result<String> {
        const NOT_SOURCES: [&str; 6] = ["build", "target", "node_modules", ".venv", "__pycache__", ".git"];
        let mut files = Vec::new();
        let mut pending = vec![self.dir.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let path = entry?.path();
                if path.file_name().is_some_and(|n| NOT_SOURCES.iter().any(|skip| n == *skip)) {
                    continue;
                }
                if path.is_dir() { pending.push(path) } else { files.push(path) }
            }
        }
        files.sort();
        let mut hasher = Sha256::new();
        for file in files {
            hasher.update(file.strip_prefix(&self.dir).unwrap_or(&file).to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            hasher.update([0]);
        }
        Ok(format!("{:x}", hasher.finalize()))
    }
}

/// Where toolchain builds are kept by source hash (and their compiled
/// code, in `compiled/`): `TOOLSHED_BUILD_CACHE`,
/// else `$XDG_CACHE_HOME/toolshed/builds`, else `~/.cache/toolshed/builds`;
/// `None` when none is known, or `TOOLSHED_BUILD_CACHE` is empty (no cache).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TOOLSHED_BUILD_CACHE") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("toolshed/builds"))
}
