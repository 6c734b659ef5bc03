//! Content blocks a tool added, as MCP content: bytes as base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{ContentBlock, Resource, ResourceContents};
use toolshed_runtime::content::{Block, Body};

/// `block` as MCP shows it.
pub(crate) fn mcp_block(block: Block) -> ContentBlock {
    match block {
        Block::Text(text) => ContentBlock::text(text),
        Block::Image { data, mime_type } => ContentBlock::image(STANDARD.encode(data), mime_type),
        Block::Audio { data, mime_type } => ContentBlock::audio(STANDARD.encode(data), mime_type),
        Block::Resource { uri, mime_type, body } => {
            let contents = match body {
                Body::Text(text) => ResourceContents::TextResourceContents { uri, mime_type, text, meta: None },
                Body::Blob(bytes) => ResourceContents::BlobResourceContents { uri, mime_type, blob: STANDARD.encode(bytes), meta: None },
            };
            ContentBlock::resource(contents)
        }
        Block::ResourceLink { uri, name, description, mime_type } => {
            let mut link = Resource::new(uri, name);
            link.description = description;
            link.mime_type = mime_type;
            ContentBlock::resource_link(link)
        }
    }
}

/// A content block as reflection renders the WIT `block` variant
/// (`{"tag": "image", "value": {"data": [..], "mime_type": ".."}}`), checked
/// as blocks a tool adds are: MIME type, URI and size.
///
/// # Errors
///
/// What is wrong with it.
pub(crate) fn reflected_block(value: &serde_json::Value) -> Result<Block, String> {
    use serde_json::Value;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let bytes = |v: Option<&Value>| -> Vec<u8> { v.and_then(Value::as_array).into_iter().flatten().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect() };
    let tag = value.get("tag").and_then(Value::as_str).ok_or("the block has no tag")?;
    let inner = value.get("value");
    let field = |name: &str| inner.and_then(|v| v.get(name));
    let block = match tag {
        "text" => Block::Text(text(inner).ok_or("a text block without text")?),
        "image" => Block::Image { data: bytes(field("data")), mime_type: text(field("mime_type")).unwrap_or_default() },
        "audio" => Block::Audio { data: bytes(field("data")), mime_type: text(field("mime_type")).unwrap_or_default() },
        "resource" => {
            let body = field("body").ok_or("a resource without a body")?;
            let body = match body.get("tag").and_then(Value::as_str) {
                Some("text") => Body::Text(text(body.get("value")).unwrap_or_default()),
                _ => Body::Blob(bytes(body.get("value"))),
            };
            Block::Resource { uri: text(field("uri")).unwrap_or_default(), mime_type: text(field("mime_type")), body }
        }
        "resource_link" => Block::ResourceLink {
            uri: text(field("uri")).unwrap_or_default(),
            name: text(field("name")).unwrap_or_default(),
            description: text(field("description")),
            mime_type: text(field("mime_type")),
        },
        other => return Err(format!("unknown block kind {other}")),
    };
    let mut check = toolshed_runtime::content::CallContent::default();
    check.add(block.clone()).map_err(|e| e.to_string())?;
    Ok(block)
}
