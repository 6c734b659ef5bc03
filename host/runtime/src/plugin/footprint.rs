//! What one instance of a plugin takes from the instance pool: its core
//! instances, linear memories and tables, counted from the component.
//!
//! A Rust plugin takes one memory, a table and a few core instances; a
//! language runtime takes more (componentize-py: 14 core instances, 38
//! with `--stub-wasi`). A call holds as many call slots as its plugin's
//! footprint fills, so whatever mix of plugins runs, the running calls
//! never ask the pool, or the system's mapping limit, for more than it has
//! ([`crate::engine::SLOT`]).

use wasmparser::{ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind, Encoding, Instance, Parser, Payload};

use crate::engine::SLOT;

/// What one instance of a component takes from the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories its modules define.
    pub memories: u32,
    /// Tables its modules define.
    pub tables: u32,
}

impl Footprint {
    /// Counts what instantiating the component `bytes` creates.
    ///
    /// # Errors
    ///
    /// When the bytes are not a well-formed binary.
    pub fn of(bytes: &[u8]) -> wasmparser::Result<Footprint> {
        // One frame per module or component being read: a module counts what
        // it defines, a component what its instantiations create, with the
        // footprints of the modules and components it can instantiate.
        struct Frame {
            defines: Footprint,
            modules: Vec<Footprint>,
            components: Vec<Footprint>,
            is_component: bool,
        }
        let mut stack: Vec<Frame> = Vec::new();
        let mut total = Footprint::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::Version { encoding, .. } => stack.push(Frame {
                    defines: Footprint::default(),
                    modules: Vec::new(),
                    components: Vec::new(),
                    is_component: encoding == Encoding::Component,
                }),
                Payload::MemorySection(reader) => top(&mut stack).defines.memories += reader.count(),
                Payload::TableSection(reader) => top(&mut stack).defines.tables += reader.count(),
                Payload::InstanceSection(reader) => {
                    let frame = top(&mut stack);
                    for instance in reader {
                        if let Instance::Instantiate { module_index, .. } = instance? {
                            let module = frame.modules.get(module_index as usize).copied().unwrap_or_default();
                            frame.defines = frame.defines.plus(Footprint { core_instances: 1, ..module });
                        }
                    }
                }
                Payload::ComponentInstanceSection(reader) => {
                    let frame = top(&mut stack);
                    for instance in reader {
                        if let ComponentInstance::Instantiate { component_index, .. } = instance? {
                            let component = frame.components.get(component_index as usize).copied().unwrap_or_default();
                            frame.defines = frame.defines.plus(component);
                        }
                    }
                }
                // Aliased modules and components take an index whose
                // instances are counted where they are defined.
                Payload::ComponentAliasSection(reader) => {
                    let frame = top(&mut stack);
                    for alias in reader {
                        match alias? {
                            ComponentAlias::Outer { kind: ComponentOuterAliasKind::CoreModule, .. }
                            | ComponentAlias::InstanceExport { kind: ComponentExternalKind::Module, .. } => frame.modules.push(Footprint::default()),
                            ComponentAlias::Outer { kind: ComponentOuterAliasKind::Component, .. }
                            | ComponentAlias::InstanceExport { kind: ComponentExternalKind::Component, .. } => {
                                frame.components.push(Footprint::default())
                            }
                            _ => {}
                        }
                    }
                }
                Payload::End(_) => {
                    let done = stack.pop().expect("every End closes a Version");
                    match stack.last_mut() {
                        Some(parent) if done.is_component => parent.components.push(done.defines),
                        Some(parent) => parent.modules.push(done.defines),
                        None => total = done.defines,
                    }
                }
                _ => {}
            }
        }
        Ok(total)
    }

    fn plus(self, other: Footprint) -> Footprint {
        Footprint {
            core_instances: self.core_instances + other.core_instances,
            memories: self.memories + other.memories,
            tables: self.tables + other.tables,
        }
    }

    /// Memory mappings one instance holds while it runs: its stack with its
    /// guard page (2), each memory with its copy-on-write image (3), and one
    /// for each slot's worth of tables. Calibrated on the measured six of a
    /// Rust plugin (one memory, two tables).
    pub fn mappings(&self) -> u32 {
        2 + 3 * self.memories + self.tables.div_ceil(SLOT.tables)
    }

    /// How many call slots one call of the component holds: enough that
    /// every pool it draws from, and the mappings it holds, fit what that
    /// many slots reserve. At least one.
    pub fn slots(&self) -> u32 {
        [
            self.core_instances.div_ceil(SLOT.core_instances),
            self.memories.div_ceil(SLOT.memories),
            self.tables.div_ceil(SLOT.tables),
            self.mappings().div_ceil(SLOT.mappings),
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
        .max(1)
    }
}

fn top<T>(stack: &mut [T]) -> &mut T {
    stack.last_mut().expect("sections come after a header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_plugin_takes_one_slot() {
        // wasm32-wasip2 Rust: the main module and wit-component's shims.
        let rust = Footprint { core_instances: 3, memories: 1, tables: 2 };
        assert_eq!(rust.mappings(), SLOT.mappings);
        assert_eq!(rust.slots(), 1);
    }

    #[test]
    fn language_runtimes_take_slots_by_their_scarcest_resource() {
        // componentize-py 0.25.1: 14 core instances, one memory, two tables.
        assert_eq!(Footprint { core_instances: 14, memories: 1, tables: 2 }.slots(), 4);
        // ... and with --stub-wasi, 38 core instances.
        assert_eq!(Footprint { core_instances: 38, memories: 1, tables: 2 }.slots(), 10);
        // componentize-js 0.23.0: 4 core instances, one memory, two tables.
        assert_eq!(Footprint { core_instances: 4, memories: 1, tables: 2 }.slots(), 1);
        // Two memories take two slots.
        assert_eq!(Footprint { core_instances: 2, memories: 2, tables: 1 }.slots(), 2);
    }
}
