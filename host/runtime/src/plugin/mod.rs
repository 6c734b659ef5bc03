//! Plugins: compiled components, their tools, and how they are loaded.

mod cache;
mod compiler;
mod footprint;
mod load;
mod tool;
mod toolchain;
mod watch;

pub use cache::{CacheLimits, CacheStats, CompiledCache};
pub use compiler::{ChildCompiler, MAX_ARTIFACT_BYTES, OutOfProcessCompiler, precompile_stdio};
pub use footprint::Footprint;
pub(crate) use load::Compiled;
pub use load::{LoadError, Plugin, Tier};
pub use tool::{ArgumentShape, Tool};
pub use toolchain::{Toolchain, WASI_PACKAGES_LINKED, is_tool_interface};
pub use watch::{PluginWatcher, QUIET, content_hash, load_dir, plugin_name, watch};
