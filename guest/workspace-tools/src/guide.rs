//! The prompt the workspace tools offer: a walk through creating a
//! workspace, waiting for it, and recovering when it fails.

/// The prompt's name.
pub const NAME: &str = "provision_workspace";

/// What the prompt is for.
pub const DESCRIPTION: &str = "Walks through creating or starting this chat's workspace with the workspace tools, waiting for its build, and recovering from the failures they report.";

/// The prompt's text, with the template the user named, if any.
pub fn text(template: Option<&str>) -> String {
    let pick = match template.map(str::trim).filter(|t| !t.is_empty()) {
        Some(template) => format!("The user wants a workspace from the template \"{template}\": call list_templates and use the id of the template of that name."),
        None => "Call list_templates and pick the template that fits the user's task; if two fit equally, ask the user which.".into(),
    };
    format!(
        "Give this chat a running workspace.\n\
         1. {pick}\n\
         2. Call read_template with that template_id. For every required parameter without a default, use the value the user gave; if it is not obvious, ask the user rather than guess.\n\
         3. Call create_workspace with the template_id and those parameters. If the chat already has a workspace, call start_workspace instead.\n\
         4. A build takes minutes. An answer with code STILL_IN_PROGRESS is not a failure: make the exact call in its first suggestion to keep waiting.\n\
         5. If the answer is an error, read its code and suggestions: TEMPLATE_PARAMETERS_REQUIRED means call read_template and retry with the missing parameters; a failed build names its build_id, whose output explains the failure; a recoverable error may succeed when retried as suggested.\n\
         6. When the workspace is running, tell the user its name and what to do next."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_names_the_template_when_given_and_every_step() {
        let named = text(Some("docker"));
        assert!(named.contains("\"docker\""));
        let open = text(None);
        assert!(open.contains("pick the template"));
        for step in ["read_template", "create_workspace", "start_workspace", "STILL_IN_PROGRESS", "TEMPLATE_PARAMETERS_REQUIRED", "build_id"] {
            assert!(open.contains(step), "{step}");
        }
    }
}
