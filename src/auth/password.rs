//! Argon2id password hashing. Hashing and verification are CPU-heavy by
//! design, so they always run on a blocking thread, never on the executor.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted for administrator roles.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// OWASP's recommended Argon2id parameters: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash verified when the e-mail is unknown, so an unknown account costs the
/// same time as a wrong password and the timing reveals nothing.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("relevo-dummy-password").expect("hashing a constant works"));

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?
        .to_string())
}

fn verify_blocking(password: &str, hash: Option<&str>) -> bool {
    let (hash, real) = match hash {
        Some(hash) => (hash, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// Hashes a password with Argon2id on a blocking thread.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
}

/// Verifies a password against a stored hash on a blocking thread. With no
/// hash (unknown account, or a user without a password) a dummy hash is
/// verified instead and the answer is always `false`.
pub async fn verify(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || verify_blocking(&password, hash.as_deref())).await?)
}

/// Warms the dummy hash so the first unknown-account login is not slower.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let hash = hash_blocking("correcto-caballo-bateria").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_blocking("correcto-caballo-bateria", Some(&hash)));
        assert!(!verify_blocking("incorrecto", Some(&hash)));
        assert!(!verify_blocking("relevo-dummy-password", None));
    }
}
