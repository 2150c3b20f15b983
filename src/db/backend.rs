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

/// How a SQLite transaction that reads before it writes begins: with the
/// write lock taken at once. A deferred `begin` reads a snapshot first, and
/// if another connection (another instance on the same file) commits
/// before this one writes, SQLite refuses the upgrade immediately with
/// "database is locked" instead of waiting out the busy timeout.
const SQLITE_BEGIN_WRITE: &str = "begin immediate";

/// Begins a write transaction on `pool`: on SQLite with the write lock
/// taken at once ([`SQLITE_BEGIN_WRITE`]), so a transaction that
/// reads before it writes waits for another instance on the same file
/// instead of being refused with "database is locked"; on PostgreSQL a
/// plain `begin` (row locks order its writers).
pub(crate) async fn begin_write<DB: Backend>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin_with(DB::BEGIN_WRITE).await
}

/// One of Relevo's two databases, as generic code binds values to it.
pub(crate) trait Backend: Database {
    /// Appends a bind placeholder for `value` to a query being built.
    fn push_bind<'t>(qb: &mut QueryBuilder<Self>, value: impl Value<'t>);

    /// Appends `(…)` binding each of `values`: the list of an `in`.
    fn push_bind_list<'t, V: Value<'t> + Copy>(qb: &mut QueryBuilder<Self>, values: &[V]) {
        qb.push("(");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            Self::push_bind(qb, *value);
        }
        qb.push(")");
    }

    /// Adds `value` as the next argument (`$N`) of a statement.
    fn add<'t>(args: &mut Self::Arguments, value: impl Value<'t>) -> Result<(), BoxDynError>;

    /// A boolean of the code (a status tab's `is_open`, an agent's
    /// `connected`) written as a literal, as statuses are: a fixed word,
    /// not a value a user chose. PostgreSQL plans a statement it has run
    /// five times with its parameters unknown (a generic plan), and with
    /// `status = $4 and is_open = $6` it guessed a seventh of the rows for
    /// any status and counted each tab "hasta" a date along the start index
    /// from the oldest conversation: 900,000 closed rows passed for a tab
    /// of open ones (750 ms a view at 1,000,000). With the words in the
    /// statement, its statistics tell an open status's 2 % from a closed
    /// one's 60 %.
    fn push_bool(qb: &mut QueryBuilder<Self>, value: bool) {
        qb.push(if value { Self::TRUE } else { Self::FALSE });
    }

    /// SQL's true and false on the backend (SQLite stores 1 and 0).
    const TRUE: &'static str;
    const FALSE: &'static str;

    /// Written before a column so that the condition on it cannot choose an
    /// index (SQLite's unary `+`, which changes no value), where a page must
    /// walk its order's index rather than sort what another index found.
    /// PostgreSQL weighs both plans by the rows it expects: nothing.
    const NOT_AN_INDEX: &'static str;

    /// Written before and after a timestamp column so that a condition on
    /// it cannot choose an index: SQLite's unary `+` ([`NOT_AN_INDEX`](Self::NOT_AN_INDEX));
    /// on PostgreSQL, a zero interval added, an expression no index holds
    /// (and whose range it estimates by default, not by the column's
    /// statistics).
    const TIME_NOT_AN_INDEX: (&'static str, &'static str);

    /// Written after a status literal read along one agent's range, so that
    /// no index of one status alone can serve it (migration 0031's closed
    /// statuses' activity orders): on a small table PostgreSQL walked every
    /// agent's cancelled conversations for one agent's. PostgreSQL: `collate
    /// "C"`, the same equality for the statuses' ASCII words in a collation
    /// no index of the column is declared with, still estimated from the
    /// column's statistics. SQLite reads the agent's index it is told
    /// ([`INDEXED_BY`](Self::INDEXED_BY)): nothing.
    const STATUS_NOT_AN_INDEX: &'static str;

    /// Written after a table's alias, before an index's name, to read the
    /// table through that index alone (SQLite's `indexed by`), where the
    /// planner without statistics picks wrongly; PostgreSQL weighs the
    /// plans by its statistics: `None`.
    const INDEXED_BY: Option<&'static str>;

    /// Whether a page merged from ordered index ranges (a campaign's, a
    /// channel's, a status's) is one compound `select … union all … order
    /// by … limit 51` that the database merges lazily, reading each range
    /// only as far as the page needs; otherwise each range is cut to its
    /// own page first, and those are merged.
    const LAZY_MERGE: bool;

    /// Whether a page merged from ranges that differ by their key alone (a
    /// campaign's or a channel's, on the same tab, order and filters) is
    /// one range joined laterally to the list of keys (`(values …) as arm
    /// cross join lateral (…)`), each key's range cut to its page and the
    /// pages sorted, rather than one `union all` arm per key. PostgreSQL
    /// plans every arm of a `union all` on its own: a Super Administrador's
    /// next page of "Abiertas", 50 campaigns' arms, took 5 to 9 ms to plan
    /// for 0.7 to 2.4 ms of run at 1,000,000 conversations, and 0.2 ms to
    /// plan laterally for 1.1 to 1.4 ms of run (its 2,550 rows read and
    /// sorted, against the merge's 101). SQLite has no lateral join, and
    /// merges its compound `select` lazily (see [`LAZY_MERGE`](Self::LAZY_MERGE)).
    const LATERAL_MERGE: bool;

    /// Whether a page read without merged ranges (one walk, or the rows
    /// found and sorted) is cut to its 51 rows before the joins that name
    /// its contact, channel, campaign and agent. PostgreSQL: yes, as its
    /// planner places those joins by its estimates, which under correlated
    /// filters are far too low. SQLite: no, its planner without statistics
    /// put the campaigns first and searched the cut page by an automatic
    /// index; in one statement it checks each row's own conditions before
    /// joining it.
    const CUT_BEFORE_JOINS: bool;

    /// Written at the end of a derived table that the planner must plan on
    /// its own, its rows joined to the outer query's as they are: PostgreSQL
    /// otherwise pulls a merged page's `page join conversations` up into the
    /// outer query and searches the join orders of every table the row names
    /// with every index of `conversations` in each: 30 to 45 ms of planning
    /// for a page that runs in 2 ms at 1,000,000 conversations (see
    /// BENCHMARKS.md). `offset 0` there; SQLite plans a derived table of a
    /// compound `select` on its own already, and takes no `offset` alone.
    const PLAN_ALONE: &'static str;

    /// Whether an arm of a merged page checks a broad name search on each
    /// row it walks with `exists` (a semi-join) rather than with a scalar
    /// sub-query (see `push_walked_search`). SQLite: `exists`, a join it
    /// runs for about half a sub-query's call. PostgreSQL: the sub-query
    /// where the arm joins nothing else (an agent's range), as it plans a
    /// semi-join in every arm, with the join orders and the merge join's
    /// range probes of both tables: a Super Administrador's "Agente
    /// desconectado" searched by a common name (twenty agents' arms)
    /// planned in 8.9 ms and ran in 8.0 with `exists`, 6.3 and 5.9 with
    /// the sub-query, at 1,000,000 conversations.
    const ARM_SEARCH_BY_EXISTS: bool;

    /// How a write transaction begins (see [`begin_write`]).
    const BEGIN_WRITE: &'static str;

    /// Appends `select id from contacts where …`: the contacts whose folded
    /// name or channel code contains `text` when it has at least
    /// [`MIN_SUBSTRING_CHARS`] characters, or begins with it when shorter
    /// (a shorter text has no trigram to look up). Each backend reads its
    /// own trigram index, `contacts_search` (migration 0025), so a search
    /// costs what it finds, not what the contacts table holds.
    fn push_contacts_matching(qb: &mut QueryBuilder<Self>, text: &str);

    /// Appends a condition on the contact `k` that holds when
    /// [`Self::push_contacts_matching`] would select it: for a search
    /// checked row by row along a walk (see `db::conversations`,
    /// `BROAD_SEARCH_CONTACTS`).
    fn push_contact_condition(qb: &mut QueryBuilder<Self>, text: &str);
}

/// Appends `(k.name_key like … or k.external_id like …)` for a name search:
/// PostgreSQL's matching, and SQLite's row-by-row check of a substring.
fn push_like_condition<DB: Backend>(qb: &mut QueryBuilder<DB>, text: &str) {
    let pattern = like_pattern(text);
    qb.push("(k.name_key like ");
    DB::push_bind(qb, pattern.clone());
    qb.push(" escape '\\' or k.external_id like ");
    DB::push_bind(qb, pattern);
    qb.push(" escape '\\')");
}

/// Appends `column >= text [and column < end]`: the binary range of what
/// begins with `text` (`end` from [`binary_prefix_end`]).
fn push_prefix_range(qb: &mut QueryBuilder<Sqlite>, column: &str, text: &str, end: Option<&str>) {
    qb.push(format!("{column} >= "));
    qb.push_bind(text.to_owned());
    if let Some(end) = end {
        qb.push(format!(" and {column} < "));
        qb.push_bind(end.to_owned());
    }
}

/// The `like` pattern of a name search: anywhere, or at the beginning of a
/// text shorter than [`MIN_SUBSTRING_CHARS`].
fn like_pattern(text: &str) -> String {
    let literal = like_literal(text);
    if is_substring_search(text) {
        format!("%{literal}%")
    } else {
        format!("{literal}%")
    }
}

/// Fewest characters a name search looks for anywhere in a name; shorter
/// texts match the beginning of names and codes.
pub const MIN_SUBSTRING_CHARS: usize = 3;

fn is_substring_search(text: &str) -> bool {
    text.chars().count() >= MIN_SUBSTRING_CHARS
}

/// Escapes `%`, `_` and `\` so user text is matched literally by `like … escape '\'`.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as one FTS5 phrase: quoted, its quotes doubled, so that nothing
/// in it is read as query syntax.
fn fts5_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The smallest string greater than every string that begins with `prefix`
/// in binary order (its last character's successor), or `None` when no
/// string bounds it.
fn binary_prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value; surrogates are skipped by `from_u32`'s refusal.
        if let Some(next) = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Backend for Sqlite {
    const NOT_AN_INDEX: &'static str = "+";
    const TIME_NOT_AN_INDEX: (&'static str, &'static str) = ("+", "");
    const STATUS_NOT_AN_INDEX: &'static str = "";
    const INDEXED_BY: Option<&'static str> = Some(" indexed by ");
    /// SQLite merges the ranges (`MERGE (UNION ALL)`) as co-routines that
    /// stop with the page; each range cut to its own page was run to its
    /// end and sorted first. A name search checked along ten campaigns'
    /// ranges read ten pages of matches for one (34 ms, now 3.5 ms, at
    /// 1,000,000 conversations).
    const LAZY_MERGE: bool = true;
    const LATERAL_MERGE: bool = false;
    const ARM_SEARCH_BY_EXISTS: bool = true;
    const CUT_BEFORE_JOINS: bool = false;
    const PLAN_ALONE: &'static str = "";
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const BEGIN_WRITE: &'static str = SQLITE_BEGIN_WRITE;

    fn push_contacts_matching(qb: &mut QueryBuilder<Self>, text: &str) {
        if is_substring_search(text) {
            // The index's rowids are the contacts' (see the migration).
            qb.push(
                "select id from contacts where rowid in \
                 (select rowid from contacts_search where contacts_search match ",
            );
            qb.push_bind(fts5_phrase(text));
            qb.push(")");
            return;
        }
        // SQLite compares text in binary order, so a range of the b-trees
        // on `name_key` and `external_id` holds exactly what begins with it.
        let end = binary_prefix_end(text);
        for (i, column) in ["name_key", "external_id"].into_iter().enumerate() {
            if i > 0 {
                qb.push(" union all ");
            }
            qb.push("select id from contacts where ");
            push_prefix_range(qb, column, text, end.as_deref());
        }
    }

    fn push_contact_condition(qb: &mut QueryBuilder<Self>, text: &str) {
        if is_substring_search(text) {
            // What the trigram index finds: SQLite's `like` ignores ASCII
            // case as the `trigram` tokenizer does (names are folded).
            push_like_condition(qb, text);
            return;
        }
        // The binary ranges of `push_contacts_matching`.
        let end = binary_prefix_end(text);
        qb.push("(");
        for (i, column) in ["name_key", "external_id"].into_iter().enumerate() {
            if i > 0 {
                qb.push(" or ");
            }
            qb.push("(");
            push_prefix_range(qb, &format!("k.{column}"), text, end.as_deref());
            qb.push(")");
        }
        qb.push(")");
    }

    fn push_bind<'t>(qb: &mut QueryBuilder<Self>, value: impl Value<'t>) {
        qb.push_bind(value);
    }

    fn add<'t>(args: &mut Self::Arguments, value: impl Value<'t>) -> Result<(), BoxDynError> {
        Arguments::add(args, value)
    }
}

impl Backend for Postgres {
    const NOT_AN_INDEX: &'static str = "";
    const TIME_NOT_AN_INDEX: (&'static str, &'static str) = ("(", " + interval '0 s')");
    const STATUS_NOT_AN_INDEX: &'static str = " collate \"C\"";
    const INDEXED_BY: Option<&'static str> = None;
    const LAZY_MERGE: bool = false;
    const LATERAL_MERGE: bool = true;
    const ARM_SEARCH_BY_EXISTS: bool = false;
    const CUT_BEFORE_JOINS: bool = true;
    const PLAN_ALONE: &'static str = " offset 0";
    const TRUE: &'static str = "true";
    const FALSE: &'static str = "false";
    const BEGIN_WRITE: &'static str = "begin";

    fn push_contacts_matching(qb: &mut QueryBuilder<Self>, text: &str) {
        // pg_trgm's index serves `like` itself, anchored or not; a range
        // would follow the database's collation, which may not be binary.
        qb.push("select k.id from contacts k where ");
        Self::push_contact_condition(qb, text);
    }

    fn push_contact_condition(qb: &mut QueryBuilder<Self>, text: &str) {
        push_like_condition(qb, text);
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_user_text_are_matched_literally() {
        assert_eq!(like_literal(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn a_phrase_keeps_quotes_and_operators_literal() {
        assert_eq!(fts5_phrase("ana"), "\"ana\"");
        assert_eq!(fts5_phrase("a\"b OR c*"), "\"a\"\"b OR c*\"");
    }

    #[test]
    fn a_prefix_range_ends_at_the_successor_of_its_last_character() {
        assert_eq!(binary_prefix_end("al").as_deref(), Some("am"));
        assert_eq!(binary_prefix_end("a ").as_deref(), Some("a!"));
        // U+D7FF's successor is past the surrogates.
        assert_eq!(binary_prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(binary_prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(binary_prefix_end("\u{10ffff}"), None);
    }

    #[test]
    fn names_shorter_than_three_characters_are_searched_as_beginnings() {
        assert!(!is_substring_search("al"));
        assert!(!is_substring_search("ñá"));
        assert!(is_substring_search("ana"));
    }
}
