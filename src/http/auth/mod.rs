//! Authentication and request protection: password hashing, the signed-in
//! principal, CSRF tokens, failed-login throttling, and the client address
//! behind trusted proxies.

pub mod client_addr;
pub mod csrf;
pub mod session;

pub use session::CurrentUser;
