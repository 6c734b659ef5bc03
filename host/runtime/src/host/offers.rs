//! What plugins offer besides tools (resources and prompts): functions of
//! the offer interfaces, called on the caller's behalf as tools are, in a
//! fresh instance under the plugin's limits, and never listed as tools.

use serde_json::Value;

use super::Toolshed;
use super::call::{CallOptions, ToolOutput};
use crate::context::CallContext;
use crate::error::{Category, HostError};
use crate::limiter::Limit;

impl Toolshed {
    /// The plugins, by name and in name order, that offer `function` (a JSON
    /// name such as `read_resource`).
    pub fn offering(&self, function: &str) -> Vec<String> {
        let current = self.served.current.load();
        current.plugins.values().filter(|p| p.offers.iter().any(|f| f.name == function)).map(|p| p.name.to_string()).collect()
    }

    /// Calls `function` of the offers of `plugin` with `arguments`, for
    /// the caller `cx`.
    pub async fn call_offer(&self, cx: &CallContext, plugin: &str, function: &str, arguments: &Value, options: CallOptions) -> ToolOutput {
        let found = {
            let current = self.served.current.load();
            current.plugins.get(plugin).and_then(|p| Some((p.offers.iter().find(|f| f.name == function)?.clone(), p.clone())))
        };
        let Some((offer, plugin)) = found else {
            return ToolOutput::error(HostError::new(Category::ResourceUnavailable, "NOT_OFFERED", format!("plugin {plugin} does not offer {function}")));
        };
        let params = match offer.parameters(arguments) {
            Ok(params) => params,
            Err(e) => return ToolOutput::error(HostError::new(Category::ValidationFailed, "INVALID_ARGUMENTS", format!("invalid arguments for {function}: {e}"))),
        };
        let limits = &plugin.policy.limits;
        match tokio::time::timeout(limits.deadline, self.run(&self.shared, cx, &offer, &plugin, &params, options)).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => ToolOutput::error(err),
            Err(_) => ToolOutput::error(Limit::Deadline.error(&plugin.name, &offer.name, limits)),
        }
    }
}
