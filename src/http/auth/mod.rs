//! Authentication and request protection: password hashing, the signed-in
//! principal, CSRF tokens, failed-login throttling, and the client address
//! behind trusted proxies.

pub mod client_addr;
pub mod csrf;
pub mod session;

pub use session::CurrentUser;

/// A random token of 32 bytes, hex-encoded (64 characters).
pub fn random_token() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
