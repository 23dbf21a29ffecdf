//! [`Access`]: the broker's authentication, authorization and redirection settings.

use std::fmt;

use super::acl::Acl;
use super::auth::{EnhancedAuth, Redirect, Users};

/// Who may connect and what they may do. The default lets everyone connect and do
/// everything, as a broker without a config file does.
#[derive(Default)]
pub struct Access {
    /// Username/password users; `None`: no password check.
    pub users: Option<Users>,
    /// The access control list; `None`: every topic allowed.
    pub acl: Option<Acl>,
    /// The enhanced authentication hook for `CONNECT`s with an Authentication Method;
    /// `None`: such a `CONNECT` gets 0x8C Bad authentication method.
    pub enhanced: Option<Box<dyn EnhancedAuth>>,
    /// Redirect every client to another server.
    pub redirect: Option<Redirect>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users)
            .field("acl", &self.acl)
            .field("enhanced", &self.enhanced.is_some())
            .field("redirect", &self.redirect)
            .finish()
    }
}
