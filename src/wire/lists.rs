//! The lists an MCP server offers (tools, prompts, resources, resource templates) as the
//! protocol names them: their methods, result fields, capabilities and notifications.
//! Pure vocabulary, shared by the gateway, the catalog file and the shell commands.

/// One of the lists a backend can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list`.
    Tools,
    /// `prompts/list`.
    Prompts,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    Templates,
}

/// Every list kind, in index order.
pub const LIST_KINDS: [ListKind; 4] = [
    ListKind::Tools,
    ListKind::Prompts,
    ListKind::Resources,
    ListKind::Templates,
];

impl ListKind {
    /// Position in per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The method that fetches one page of it.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The server capability that says the list exists (resources covers templates).
    pub fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    /// The result field holding the entries.
    pub fn items_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The entry field that identifies it.
    pub fn id_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::Templates => "uriTemplate",
        }
    }

    /// Whether entries are shown under exposed names (tools, prompts) or unchanged (URIs,
    /// which must stay valid links).
    pub fn prefixed(self) -> bool {
        matches!(self, ListKind::Tools | ListKind::Prompts)
    }

    /// The kind a `notifications/…/list_changed` method invalidates (resources cover
    /// templates too).
    pub fn from_list_changed(method: &str) -> Option<&'static [ListKind]> {
        match method {
            "notifications/tools/list_changed" => Some(&[ListKind::Tools]),
            "notifications/prompts/list_changed" => Some(&[ListKind::Prompts]),
            "notifications/resources/list_changed" => {
                Some(&[ListKind::Resources, ListKind::Templates])
            }
            _ => None,
        }
    }

    /// The notification gangway sends the client when this list changed.
    pub fn list_changed(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
        }
    }
}
