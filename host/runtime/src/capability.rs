//! Capabilities: families of host interfaces beyond the runtime's own, each
//! defined in a crate of its own (`toolshed-infra`, `toolshed-platform`, or
//! an embedder's).
//!
//! A capability has two halves, kept apart the way wasmtime-wasi keeps an
//! interface's linking apart from its state:
//!
//! - a [`Capability`], registered on the [`Runtime`](crate::Runtime): the
//!   interfaces it defines and how to add them to a linker. A plugin is
//!   linked with exactly the capabilities its policy grants, so an
//!   ungranted interface does not exist for it.
//! - its providers, given to each [`Toolshed`](crate::Toolshed) in
//!   [`Providers`]: the objects that answer the calls (a backend). The
//!   capability's host code finds them through [`CallState::split`].

use wasmtime::component::Linker;

pub use crate::providers::Providers;
use crate::state::CallState;

/// A family of host interfaces a plugin may be granted.
pub trait Capability: Send + Sync + 'static {
    /// A short name for messages, such as `infra`.
    fn name(&self) -> &str;

    /// The interfaces it defines, unversioned, such as `toolshed:infra/db`.
    fn interfaces(&self) -> &[&'static str];

    /// Adds every interface (at every version it serves) to `linker`.
    ///
    /// # Errors
    ///
    /// When an interface is already defined.
    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()>;

    /// Providers that answer as an empty host would: reads find nothing and
    /// requests fail. Smoke calls of new plugin versions run against them.
    fn empty_providers(&self, providers: &mut Providers);

    /// Whether `providers` hold what this capability's host functions
    /// answer from: a host whose policy grants the capability refuses to
    /// start without it.
    fn provided(&self, providers: &Providers) -> bool;
}

