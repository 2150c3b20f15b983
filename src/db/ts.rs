//! [`Ts`]: a UTC timestamp as both backends store it.
//!
//! PostgreSQL stores `timestamptz`. SQLite stores RFC 3339 text, and sqlx's
//! own encoding drops trailing zero digits of the fraction, which would make
//! text order differ from time order (`…:05Z` sorts after `…:05.5Z`). `Ts`
//! always writes six fraction digits, so comparisons and keyset paging on the
//! text column are exact.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

/// A UTC instant truncated to microseconds (the precision both backends keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn new(at: DateTime<Utc>) -> Ts {
        Ts(at.trunc_subsecs(6))
    }

    pub fn now() -> Ts {
        Ts::new(Utc::now())
    }

    /// The fixed-width text form stored by SQLite.
    pub fn to_sqlite_text(self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

impl From<DateTime<Utc>> for Ts {
    fn from(at: DateTime<Utc>) -> Ts {
        Ts::new(at)
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <DateTime<Utc> as Type<Sqlite>>::compatible(ty) || <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Ts(<DateTime<Utc> as Decode<Sqlite>>::decode(value)?))
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Ts(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_sorts_like_time() {
        let whole = Ts::new(
            DateTime::parse_from_rfc3339("2026-11-26T14:05:05Z")
                .unwrap()
                .into(),
        );
        let half = Ts::new(
            DateTime::parse_from_rfc3339("2026-11-26T14:05:05.5Z")
                .unwrap()
                .into(),
        );
        assert!(whole.to_sqlite_text() < half.to_sqlite_text());
        assert_eq!(whole.to_sqlite_text(), "2026-11-26T14:05:05.000000Z");
    }
}
