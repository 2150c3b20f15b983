//! Rows are decoded by column name (`db::row::from_row!`, which replaced
//! `#[derive(sqlx::FromRow)]`): the order of the columns does not matter, and
//! a missing column or a value its field refuses is an error naming the
//! column.

mod common;

use common::{Backend, fresh_store};
use relevo::db::{NewUser, Store, Ts, UserRecord};
use relevo::domain::Role;

async fn user_row(store: &Store, sql: &'static str) -> Result<UserRecord, sqlx::Error> {
    match store {
        Store::Sqlite(pools) => sqlx::query_as(sql).fetch_one(&pools.read).await,
        Store::Postgres(pg) => sqlx::query_as(sql).fetch_one(&pg.pool).await,
    }
}

async fn rows_are_decoded_by_column_name(backend: Backend) {
    let Some((store, _url, _guard)) = fresh_store(backend).await else {
        return;
    };
    let new = NewUser {
        email: "ana.rows@relevo.demo".into(),
        name: "Ana Filas".into(),
        role: Role::Agent,
        password_hash: None,
        campaigns: Vec::new(),
    };
    let id = store.create_user(&new, Ts::now()).await.expect("user");

    // The columns in another order than the fields, and one more.
    let user = user_row(
        &store,
        "select active, 1 as extra, role, name, email, id from users \
         where email = 'ana.rows@relevo.demo'",
    )
    .await
    .expect("decoded");
    assert_eq!(
        (user.id, user.email.as_str(), user.name.as_str(), user.role),
        (id, "ana.rows@relevo.demo", "Ana Filas", Role::Agent)
    );
    assert!(user.active);

    let missing = user_row(&store, "select id, email, name, active from users")
        .await
        .expect_err("no role column");
    assert!(
        matches!(&missing, sqlx::Error::ColumnNotFound(column) if column == "role"),
        "{missing:?}"
    );

    let refused = user_row(
        &store,
        "select id, email, name, 'nadie' as role, active from users",
    )
    .await
    .expect_err("not a role");
    assert!(
        matches!(&refused, sqlx::Error::ColumnDecode { index, .. } if index == "role"),
        "{refused:?}"
    );

    // Two failures: the first field's is the error.
    let both = user_row(
        &store,
        "select email, name, 'nadie' as role, active from users",
    )
    .await
    .expect_err("no id, not a role");
    assert!(
        matches!(&both, sqlx::Error::ColumnNotFound(column) if column == "id"),
        "{both:?}"
    );
}

on_both_backends!(rows_are_decoded_by_column_name);
