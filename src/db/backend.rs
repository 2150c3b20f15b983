//! What the Store's code needs from either database to bind a value: one
//! small trait, so that a query written once (a statement's arguments, a
//! list's conditions) is a generic function, not a macro expanded per
//! backend.
//!
//! sqlx's `Encode`/`Type` bounds name one database each, and a generic
//! function over `sqlx::Database` would have to repeat them for every type
//! it binds. [`Value`] states once that a type binds on both backends, and
//! [`Backend`] is implemented for the two: a generic function takes
//! `DB: Backend` and binds any [`Value`].

use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Postgres, QueryBuilder, Sqlite, Type};

/// A value both backends can bind (ids, integers, booleans, text, instants,
/// and each of them optional).
/// (`'t` is sqlx's encoding lifetime; a higher-ranked bound would demand
/// `'static` values and refuse borrowed text.)
pub(crate) trait Value<'t>:
    Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>
{
}

impl<'t, T> Value<'t> for T where
    T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>
{
}

/// One of Relevo's two databases, as generic code binds values to it.
pub(crate) trait Backend: Database {
    /// Appends a bind placeholder for `value` to a query being built.
    fn push_bind<'t>(qb: &mut QueryBuilder<Self>, value: impl Value<'t>);

    /// Adds `value` as the next argument (`$N`) of a statement.
    fn add<'t>(args: &mut Self::Arguments, value: impl Value<'t>) -> Result<(), BoxDynError>;

    /// Written before a column so that the condition on it cannot choose an
    /// index (SQLite's unary `+`, which changes no value), where a page must
    /// walk its order's index rather than sort what another index found.
    /// PostgreSQL weighs both plans by the rows it expects: nothing.
    const NOT_AN_INDEX: &'static str;
}

impl Backend for Sqlite {
    const NOT_AN_INDEX: &'static str = "+";

    fn push_bind<'t>(qb: &mut QueryBuilder<Self>, value: impl Value<'t>) {
        qb.push_bind(value);
    }

    fn add<'t>(args: &mut Self::Arguments, value: impl Value<'t>) -> Result<(), BoxDynError> {
        Arguments::add(args, value)
    }
}

impl Backend for Postgres {
    const NOT_AN_INDEX: &'static str = "";

    fn push_bind<'t>(qb: &mut QueryBuilder<Self>, value: impl Value<'t>) {
        qb.push_bind(value);
    }

    fn add<'t>(args: &mut Self::Arguments, value: impl Value<'t>) -> Result<(), BoxDynError> {
        Arguments::add(args, value)
    }
}

/// A statement's arguments, added in `$N` order.
pub(crate) struct Args<DB: Backend> {
    args: DB::Arguments,
    /// The first value that could not be encoded, reported when the
    /// statement is built rather than at each `add`.
    error: Option<BoxDynError>,
}

impl<DB: Backend> Default for Args<DB> {
    fn default() -> Self {
        Args {
            args: Default::default(),
            error: None,
        }
    }
}

impl<DB: Backend> Args<DB> {
    /// Adds `value` as the next argument.
    pub(crate) fn add<'t>(mut self, value: impl Value<'t>) -> Self {
        if self.error.is_none()
            && let Err(e) = DB::add(&mut self.args, value)
        {
            self.error = Some(e);
        }
        self
    }

    /// The arguments, or the first value that failed to encode.
    pub(crate) fn finish(self) -> Result<DB::Arguments, sqlx::Error> {
        match self.error {
            None => Ok(self.args),
            Some(e) => Err(sqlx::Error::Encode(e)),
        }
    }
}
