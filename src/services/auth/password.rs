//! Argon2id password hashing. Hashing and verification are CPU- and
//! memory-heavy by design, so they run on dedicated threads, never on the
//! executor.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

pub use crate::domain::admin::MIN_PASSWORD_CHARS;

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

thread_local! {
    /// The Argon2 working memory of this password thread, allocated once and
    /// reused: allocating 19 MiB per login and freeing it leaves the
    /// allocator holding ever more of them under a burst of logins.
    static WORKING_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes the hash of `password` with the parameters and salt of the
/// PHC string `hash` and compares in constant time.
fn matches_phc(password: &str, hash: &str) -> Option<bool> {
    use subtle::ConstantTimeEq;
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = Version::try_from(parsed.version.unwrap_or(0x13)).ok()?;
    let expected = parsed.hash?;
    let params = Params::try_from(&parsed).ok()?;
    let mut salt_buffer = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buffer).ok()?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    WORKING_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        memory.resize(params.block_count(), argon2::Block::default());
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
            .ok()
    })?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

fn verify_blocking(password: &str, hash: Option<&str>) -> bool {
    let (hash, real) = match hash {
        Some(hash) => (hash, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    matches_phc(password, hash).unwrap_or(false) && real
}

type Job = Box<dyn FnOnce() + Send>;

/// Argon2 runs on a few dedicated threads, never on the async executor.
/// Each computation takes 19 MiB and a core for tens of milliseconds; on a
/// small, fixed set of threads a burst of logins queues instead of
/// multiplying the server's memory (every new thread would get its own
/// allocator arena and keep a 19 MiB block in it) or starving the requests
/// in flight.
static WORKERS: LazyLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a password hashing thread");
        }
    }
    std::sync::Mutex::new(tx)
});

/// Runs `work` on the password threads and waits for it without blocking
/// the executor.
async fn on_password_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    WORKERS
        .lock()
        .map_err(|_| anyhow::anyhow!("password threads unavailable"))?
        .send(job)
        .map_err(|_| anyhow::anyhow!("password threads stopped"))?;
    Ok(rx.await?)
}

/// Hashes a password with Argon2id off the executor.
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_password_thread(move || hash_blocking(&password)).await?
}

/// Verifies a password against a stored hash off the executor. With no
/// hash (unknown account, or a user without a password) a dummy hash is
/// verified instead and the answer is always `false`.
pub async fn verify(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    on_password_thread(move || verify_blocking(&password, hash.as_deref())).await
}

/// Counts the password verifications of one application, for `/metrics`:
/// how many Argon2 computations logins cost (throttling keeps it at most
/// the limit per account and address, however many attempts arrive at once).
#[derive(Debug, Default)]
pub struct VerifyCounter(std::sync::atomic::AtomicU64);

impl VerifyCounter {
    /// Verifications counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// [`verify`], counted in `counter`.
pub async fn verify_counted(
    counter: &VerifyCounter,
    password: String,
    hash: Option<String>,
) -> anyhow::Result<bool> {
    counter.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    verify(password, hash).await
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
