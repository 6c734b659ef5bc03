//! Components written by hand, without any guest toolchain, to hold the
//! host to what it makes of a component's shape: which exports become tools
//! and which imports it refuses. Every exported function takes nothing and
//! returns a `u32`, its position among all the component's functions.

use wasm_encoder::{
    Alias, CanonicalFunctionSection, CodeSection, Component, ComponentAliasSection, ComponentExportKind, ComponentExportSection,
    ComponentImportSection, ComponentInstanceSection, ComponentTypeRef, ComponentTypeSection, Encode, ExportKind, ExportSection, Function,
    FunctionSection, InstanceSection, InstanceType, Instruction, Module, ModuleArg, ModuleSection, PrimitiveValType, ProducersField,
    ProducersSection, RawCustomSection, TypeSection, ValType,
};

/// A component to write: its imported and exported instances, each with
/// the names of its functions, and the producers it names.
///
/// ```
/// let bytes = toolshed_harness::HandMade::new().export("plugins:hand/tools@0.1.0", &["answer"]).build();
/// assert_eq!(&bytes[..4], b"\0asm");
/// ```
#[derive(Default)]
pub struct HandMade {
    imports: Vec<(String, Vec<String>)>,
    exports: Vec<(String, Vec<String>)>,
    processed_by: Vec<(String, String)>,
    /// How many more times the core module is instantiated, unused, as a
    /// language runtime's many modules would be.
    extra_core_instances: u32,
}

impl HandMade {
    /// A component importing and exporting nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Imports instance `name` with functions `funcs`.
    pub fn import(mut self, name: &str, funcs: &[&str]) -> Self {
        self.imports.push((name.into(), funcs.iter().map(|f| f.to_string()).collect()));
        self
    }

    /// Exports instance `name` with functions `funcs`.
    pub fn export(mut self, name: &str, funcs: &[&str]) -> Self {
        self.exports.push((name.into(), funcs.iter().map(|f| f.to_string()).collect()));
        self
    }

    /// Names `tool` at `version` under `processed-by` in the producers section.
    pub fn processed_by(mut self, tool: &str, version: &str) -> Self {
        self.processed_by.push((tool.into(), version.into()));
        self
    }

    /// Instantiates the core module `n` more times.
    pub fn extra_core_instances(mut self, n: u32) -> Self {
        self.extra_core_instances = n;
        self
    }

    /// The component's bytes.
    pub fn build(&self) -> Vec<u8> {
        let funcs: Vec<&str> = self.exports.iter().flat_map(|(_, f)| f.iter().map(String::as_str)).collect();

        // A core module with one function per exported function: `f{k}` returns k.
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I32]);
        let mut functions = FunctionSection::new();
        let mut core_exports = ExportSection::new();
        let mut code = CodeSection::new();
        for k in 0..funcs.len() as u32 {
            functions.function(0);
            core_exports.export(&format!("f{k}"), ExportKind::Func, k);
            let mut body = Function::new([]);
            body.instruction(&Instruction::I32Const(k as i32)).instruction(&Instruction::End);
            code.function(&body);
        }
        let mut module = Module::new();
        module.section(&types).section(&functions).section(&core_exports).section(&code);

        // Component type 0 is `func() -> u32`; then one instance type per import.
        let mut component_types = ComponentTypeSection::new();
        component_types.function().params(Vec::<(&str, wasm_encoder::ComponentValType)>::new()).result(Some(PrimitiveValType::U32.into()));
        let mut imports = ComponentImportSection::new();
        for (i, (name, funcs)) in self.imports.iter().enumerate() {
            let mut instance = InstanceType::new();
            instance.ty().function().params(Vec::<(&str, wasm_encoder::ComponentValType)>::new()).result(Some(PrimitiveValType::U32.into()));
            for func in funcs {
                instance.export(func.as_str(), ComponentTypeRef::Func(0));
            }
            component_types.instance(&instance);
            imports.import(name.as_str(), ComponentTypeRef::Instance(1 + i as u32));
        }

        let mut core_instances = InstanceSection::new();
        for _ in 0..=self.extra_core_instances {
            core_instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
        }
        let mut aliases = ComponentAliasSection::new();
        let mut lifted = CanonicalFunctionSection::new();
        for k in 0..funcs.len() as u32 {
            aliases.alias(Alias::CoreInstanceExport { instance: 0, kind: ExportKind::Func, name: &format!("f{k}") });
            lifted.lift(k, 0, []);
        }
        // Imported instances come first in the instance index space.
        let mut instances = ComponentInstanceSection::new();
        let mut component_exports = ComponentExportSection::new();
        let mut next_func = 0u32;
        for (e, (name, funcs)) in self.exports.iter().enumerate() {
            let items: Vec<(&str, ComponentExportKind, u32)> = funcs
                .iter()
                .map(|f| {
                    next_func += 1;
                    (f.as_str(), ComponentExportKind::Func, next_func - 1)
                })
                .collect();
            instances.export_items(items);
            component_exports.export(name.as_str(), ComponentExportKind::Instance, (self.imports.len() + e) as u32, None);
        }

        let mut component = Component::new();
        component.section(&component_types);
        if !self.imports.is_empty() {
            component.section(&imports);
        }
        component
            .section(&ModuleSection(&module))
            .section(&core_instances)
            .section(&aliases)
            .section(&lifted)
            .section(&instances)
            .section(&component_exports);
        if !self.processed_by.is_empty() {
            let mut field = ProducersField::new();
            for (tool, version) in &self.processed_by {
                field.value(tool, version);
            }
            let mut producers = ProducersSection::new();
            producers.field("processed-by", &field);
            let mut raw = Vec::new();
            producers.encode(&mut raw);
            component.section(&RawCustomSection(&raw));
        }
        component.finish()
    }
}
