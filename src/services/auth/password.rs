//! Argon2id password hashing. Hashing and verification are CPU- and
//! memory-heavy by design, so they run on dedicated threads, never on the
//! executor.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    /// The Argon2 working memory of this password thread, reused while
    /// logins keep coming: allocating 19 MiB per login and freeing it
    /// leaves the allocator holding ever more of them under a burst of
    /// logins. Released when the burst is over (see [`KEEP_WORKING_MEMORY`]).
    static WORKING_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How long a password thread keeps its working memory after its last job.
/// Logins come in bursts (a shift starting); between bursts the 19 MiB per
/// thread went on counting in the server's resident memory for nothing
/// (39 of its 200 MiB under the `console` benchmark).
const KEEP_WORKING_MEMORY: Duration = Duration::from_secs(2);

/// Bytes of Argon2 working memory the password threads hold now (0 once
/// they have been idle for [`KEEP_WORKING_MEMORY`]).
static WORKING_MEMORY_HELD: AtomicUsize = AtomicUsize::new(0);

/// Runs `compute` with this thread's working memory grown to `blocks`.
fn with_working_memory<T>(blocks: usize, compute: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    WORKING_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let before = memory.capacity();
        memory.resize(blocks, argon2::Block::default());
        let grown = memory.capacity().saturating_sub(before);
        WORKING_MEMORY_HELD.fetch_add(grown * argon2::Block::SIZE, Ordering::Relaxed);
        compute(&mut memory[..])
    })
}

/// Frees this thread's working memory and gives the allocator's free pages
/// back to the operating system: glibc keeps a freed block of this size in
/// the thread's arena (its trim threshold grows with the blocks it has
/// seen), so without the trim nothing would leave the resident set.
fn release_working_memory() {
    let released = WORKING_MEMORY.with(|memory| std::mem::take(&mut *memory.borrow_mut()));
    WORKING_MEMORY_HELD.fetch_sub(released.capacity() * argon2::Block::SIZE, Ordering::Relaxed);
    drop(released);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under
    // its locks; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
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
    with_working_memory(params.block_count(), |memory| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
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
                use std::sync::mpsc::RecvTimeoutError;
                let mut worked = false;
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv_timeout(KEEP_WORKING_MEMORY),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            job();
                            worked = true;
                        }
                        // Hashing (a new password) allocates and frees its
                        // own 19 MiB: trimmed too.
                        Err(RecvTimeoutError::Timeout) if worked => {
                            release_working_memory();
                            worked = false;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
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

    fn working_memory_held() -> usize {
        WORKING_MEMORY_HELD.load(Ordering::Relaxed)
    }

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let hash = hash_blocking("correcto-caballo-bateria").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_blocking("correcto-caballo-bateria", Some(&hash)));
        assert!(!verify_blocking("incorrecto", Some(&hash)));
        assert!(!verify_blocking("relevo-dummy-password", None));
        // This test thread is not a password thread: it lets go itself.
        release_working_memory();
    }

    #[tokio::test]
    async fn the_password_threads_release_their_memory_after_a_burst() {
        let hash = hash("correcto-caballo-bateria".into()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Read on the password thread, right after its verification.
        on_password_thread(move || {
            let matched = verify_blocking("correcto-caballo-bateria", Some(&hash));
            let _ = tx.send((matched, working_memory_held()));
        })
        .await
        .unwrap();
        let (matched, held) = rx.await.unwrap();
        assert!(matched);
        assert!(held >= 19 * 1024 * 1024, "held {held} B while verifying");
        // Released once the threads are idle; other tests may verify
        // meanwhile, so wait (bounded) for the idle moment.
        let deadline = std::time::Instant::now() + 4 * KEEP_WORKING_MEMORY + Duration::from_secs(5);
        while working_memory_held() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} B still held after the burst",
                working_memory_held()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
