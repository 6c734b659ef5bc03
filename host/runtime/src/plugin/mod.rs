//! Plugins: compiled components, their tools, and how they are loaded.

mod cache;
mod load;
mod tool;
mod watch;

pub use cache::{CacheLimits, CacheStats, CompiledCache};
pub(crate) use load::Compiled;
pub use load::{LoadError, Plugin, Tier};
pub use tool::{ArgumentShape, Tool};
pub use watch::{PluginWatcher, QUIET, content_hash, load_dir, plugin_name, watch};
