//! Content blocks a call adds beside its structured result
//! (`toolshed:runtime/content`): checked and bounded as they are added, so
//! a plugin's flood or a malformed block never reaches a client and never
//! grows the host's memory past the caps.

/// The most bytes of data or text one block may carry.
pub const MAX_BLOCK_BYTES: usize = 256 << 10;
/// The most bytes of content one call may add in all.
pub const MAX_CALL_BYTES: usize = 1 << 20;
/// The most blocks one call may add.
pub const MAX_BLOCKS: usize = 64;
/// The longest URI a block may name.
pub const MAX_URI_BYTES: usize = 2048;

/// What a resource holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// One content block of a call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Text for the reader.
    Text(String),
    /// An image: bytes and an `image/...` MIME type.
    Image {
        /// The bytes.
        data: Vec<u8>,
        /// The MIME type.
        mime_type: String,
    },
    /// A sound: bytes and an `audio/...` MIME type.
    Audio {
        /// The bytes.
        data: Vec<u8>,
        /// The MIME type.
        mime_type: String,
    },
    /// A resource, carried whole.
    Resource {
        /// Its URI.
        uri: String,
        /// Its MIME type, if known.
        mime_type: Option<String>,
        /// What it holds.
        body: Body,
    },
    /// A resource, named but not carried.
    ResourceLink {
        /// Its URI.
        uri: String,
        /// A short name.
        name: String,
        /// What it is.
        description: Option<String>,
        /// Its MIME type, if known.
        mime_type: Option<String>,
    },
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The block alone is over [`MAX_BLOCK_BYTES`].
    #[error("the block carries {0} bytes, more than the {MAX_BLOCK_BYTES} one block may")]
    TooLarge(usize),
    /// The call is at [`MAX_CALL_BYTES`] or [`MAX_BLOCKS`].
    #[error("the call has added as much content as it may ({MAX_BLOCKS} blocks, {MAX_CALL_BYTES} bytes)")]
    TooMuch,
    /// The MIME type is not of the block's kind.
    #[error("{0:?} is not a MIME type of this kind of block")]
    BadMimeType(String),
    /// The URI has no scheme or is too long.
    #[error("the URI has no scheme or is longer than {MAX_URI_BYTES} bytes")]
    BadUri,
}

impl Block {
    /// The bytes the block carries: data, text and names.
    pub fn size(&self) -> usize {
        match self {
            Block::Text(text) => text.len(),
            Block::Image { data, mime_type } | Block::Audio { data, mime_type } => data.len() + mime_type.len(),
            Block::Resource { uri, mime_type, body } => {
                uri.len() + mime_type.as_ref().map_or(0, String::len) + match body {
                    Body::Text(text) => text.len(),
                    Body::Blob(bytes) => bytes.len(),
                }
            }
            Block::ResourceLink { uri, name, description, mime_type } => {
                uri.len() + name.len() + description.as_ref().map_or(0, String::len) + mime_type.as_ref().map_or(0, String::len)
            }
        }
    }

    /// Checks the block's MIME type and URI.
    fn check(&self) -> Result<(), Refusal> {
        match self {
            Block::Text(_) => Ok(()),
            Block::Image { mime_type, .. } => mime_of_kind(mime_type, Some("image")),
            Block::Audio { mime_type, .. } => mime_of_kind(mime_type, Some("audio")),
            Block::Resource { uri, mime_type, .. } | Block::ResourceLink { uri, mime_type, .. } => {
                check_uri(uri)?;
                mime_type.as_deref().map_or(Ok(()), |m| mime_of_kind(m, None))
            }
        }
    }
}

/// Whether `mime` is `type/subtype` made of token characters, with
/// `kind` as its type when one is asked for.
fn mime_of_kind(mime: &str, kind: Option<&str>) -> Result<(), Refusal> {
    let bad = || Refusal::BadMimeType(crate::text::clip(mime, 100));
    let essence = mime.split(';').next().unwrap_or_default().trim();
    let (ty, subtype) = essence.split_once('/').ok_or_else(bad)?;
    let token = |s: &str| !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    if !token(ty) || !token(subtype) || mime.len() > 255 || mime.chars().any(char::is_control) {
        return Err(bad());
    }
    match kind {
        Some(kind) if !ty.eq_ignore_ascii_case(kind) => Err(bad()),
        _ => Ok(()),
    }
}

/// Whether `uri` has a scheme (RFC 3986: a letter, then letters, digits,
/// `+`, `-` or `.`, then `:`) and fits the length cap.
pub fn check_uri(uri: &str) -> Result<(), Refusal> {
    if uri.len() > MAX_URI_BYTES || uri.chars().any(char::is_control) {
        return Err(Refusal::BadUri);
    }
    let Some((scheme, _)) = uri.split_once(':') else { return Err(Refusal::BadUri) };
    let mut chars = scheme.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_is_letter || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(Refusal::BadUri);
    }
    Ok(())
}

/// The blocks one call has added, and what they weigh.
#[derive(Debug, Default)]
pub struct CallContent {
    blocks: Vec<Block>,
    bytes: usize,
}

impl CallContent {
    /// Adds `block` after the others, unless it is malformed or over a cap.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] naming what was wrong; the call keeps what it had.
    pub fn add(&mut self, block: Block) -> Result<(), Refusal> {
        let size = block.size();
        if size > MAX_BLOCK_BYTES {
            return Err(Refusal::TooLarge(size));
        }
        block.check()?;
        if self.blocks.len() >= MAX_BLOCKS || self.bytes + size > MAX_CALL_BYTES {
            return Err(Refusal::TooMuch);
        }
        self.bytes += size;
        self.blocks.push(block);
        Ok(())
    }

    /// The blocks, in the order they were added.
    pub fn into_blocks(self) -> Vec<Block> {
        self.blocks
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(mime: &str) -> Block {
        Block::Image { data: vec![1, 2, 3], mime_type: mime.into() }
    }

    #[test]
    fn an_image_needs_an_image_mime_type() {
        let mut content = CallContent::default();
        assert_eq!(content.add(image("image/png")), Ok(()));
        assert_eq!(content.add(image("image/svg+xml; charset=utf-8")), Ok(()));
        for bad in ["audio/wav", "png", "image/", "/png", "image/p ng", "image/png\n", ""] {
            assert!(matches!(content.add(image(bad)), Err(Refusal::BadMimeType(_))), "{bad:?}");
        }
        assert!(matches!(content.add(Block::Audio { data: vec![], mime_type: "image/png".into() }), Err(Refusal::BadMimeType(_))));
        assert_eq!(content.into_blocks().len(), 2);
    }

    #[test]
    fn a_resource_needs_a_uri_with_a_scheme() {
        let mut content = CallContent::default();
        let link = |uri: &str| Block::ResourceLink { uri: uri.into(), name: "n".into(), description: None, mime_type: None };
        assert_eq!(content.add(link("build://5f0c/output")), Ok(()));
        for bad in ["no-scheme", "://x", "1x:y", &format!("x:{}", "a".repeat(MAX_URI_BYTES))] {
            assert_eq!(content.add(link(bad)), Err(Refusal::BadUri), "{bad:?}");
        }
    }

    #[test]
    fn an_oversized_block_is_refused_and_the_call_stays_bounded() {
        let mut content = CallContent::default();
        let big = Block::Text("x".repeat(MAX_BLOCK_BYTES + 1));
        assert_eq!(content.add(big), Err(Refusal::TooLarge(MAX_BLOCK_BYTES + 1)));
        assert_eq!(content.bytes(), 0, "nothing of a refused block is kept");
        let mut refused = 0;
        for _ in 0..(MAX_CALL_BYTES / MAX_BLOCK_BYTES) * 4 {
            if content.add(Block::Text("x".repeat(MAX_BLOCK_BYTES))).is_err() {
                refused += 1;
            }
        }
        assert!(content.bytes() <= MAX_CALL_BYTES, "{}", content.bytes());
        assert!(refused > 0);
        let mut many = CallContent::default();
        for _ in 0..MAX_BLOCKS {
            many.add(Block::Text("x".into())).unwrap();
        }
        assert_eq!(many.add(Block::Text("x".into())), Err(Refusal::TooMuch));
    }
}
