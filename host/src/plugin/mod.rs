//! Plugins: compiled components, their tools, and how they are loaded.

mod load;
mod tool;

pub use load::{LoadError, Plugin};
pub use tool::{ArgumentShape, Tool};
