//! Authentication work that is not HTTP: password hashing, failed-login
//! throttling and the cache of signed-in principals.

pub mod password;
pub mod principals;
pub mod sessions;
pub mod throttle;
