//! Rows decoded by column name, without sqlx's proc-macro crate.
//!
//! [`from_row!`] does what `#[derive(sqlx::FromRow)]` did here: each field
//! is read from the column of its own name. The derive lives in sqlx's
//! proc-macro crate, which links sqlx's drivers, the bundled SQLite among
//! them, into the compiler a second time: the longest part of a clean build
//! (BENCHMARKS.md, "Build time").

use sqlx::error::BoxDynError;

/// Defines a struct and implements `sqlx::FromRow` for the rows of both
/// backends, each field read from the column of its name.
///
/// A field marked `#[try_from(String)]` is read as that type and converted
/// with `TryFrom` (what `#[sqlx(try_from = "String")]` did); a conversion
/// that fails is `sqlx::Error::ColumnDecode`, naming the column. Fields may
/// carry doc comments, and only those before `#[try_from]`.
///
/// A macro because the field list is needed twice, in the struct and in
/// the decoding; the decoding has no `?`, so the first column that fails is
/// found by a `match`.
macro_rules! from_row {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:expr])*
                $(#[try_from($from:ty)])?
                $field_vis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $field_vis $field: $ty,
            )*
        }

        $crate::db::row::from_row!(@impl $name, ::sqlx::sqlite::SqliteRow, $($field $(: $from)?),*);
        $crate::db::row::from_row!(@impl $name, ::sqlx::postgres::PgRow, $($field $(: $from)?),*);
    };
    (@impl $name:ident, $row:ty, $($field:ident $(: $from:ty)?),*) => {
        impl<'r> ::sqlx::FromRow<'r, $row> for $name {
            fn from_row(row: &'r $row) -> ::sqlx::Result<Self> {
                match ($($crate::db::row::from_row!(@column row, $field $(: $from)?),)*) {
                    ($(Ok($field),)*) => Ok(Self { $($field),* }),
                    ($($field,)*) => Err($crate::db::row::first_error([$($field.err()),*])),
                }
            }
        }
    };
    (@column $row:ident, $field:ident) => {
        ::sqlx::Row::try_get($row, stringify!($field))
    };
    (@column $row:ident, $field:ident : $from:ty) => {
        $crate::db::row::converted::<$from, _, _>($row, stringify!($field))
    };
}

pub(crate) use from_row;

/// The column `name` read as `F`, converted to `T`.
pub(crate) fn converted<'r, F, T, R>(row: &'r R, name: &str) -> sqlx::Result<T>
where
    R: sqlx::Row,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
    F: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    T: TryFrom<F>,
    T::Error: Into<BoxDynError>,
{
    let value: F = row.try_get(name)?;
    T::try_from(value).map_err(|e| sqlx::Error::ColumnDecode {
        index: name.to_owned(),
        source: e.into(),
    })
}

/// The first error of a row's columns, in field order; called only when
/// one of them failed.
pub(crate) fn first_error<const N: usize>(errors: [Option<sqlx::Error>; N]) -> sqlx::Error {
    errors
        .into_iter()
        .flatten()
        .next()
        .expect("called when a column failed to decode")
}
