//! Reading conversations: the scoped Mensajes list with its filters, counts
//! and keyset paging, and one conversation with its history.
//!
//! # Activity never goes back
//!
//! A conversation's `last_activity_at` and `status_since` are never earlier
//! than its `started_at`: it starts with both at its start, every write of
//! activity keeps the later of the old and the new instant (transitions
//! through `compare_and_set!`, messages through their touch statements),
//! and a status starts at the later of now and the activity. So even an
//! instance whose clock lags another's cannot move them back. A page of
//! conversations started since a date relies on it to bound its walk
//! (see [`push_filter_conditions`]), and their Rezagadas count to start
//! each campaign's stuck range at that date (see [`StuckRanges`]).

use uuid::Uuid;

use std::borrow::Cow;

use sqlx::{FromRow, QueryBuilder};

use super::auto_cancel::{NUDGES_OF, NudgeSent};
use super::backend::Backend;
use super::row::from_row;
use super::transcripts::{TranscriptPage, TranscriptPosition, page_of, push_page_query};
use super::{StoreResult, Ts, with_read, with_read_connection};
use crate::domain::{ActorKind, ChannelKind, Conversation, EventKind, Scope, Status};

/// Rows per Mensajes page.
pub const PAGE_SIZE: i64 = 50;

/// Which statuses the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// The five open statuses (the default view).
    Open,
    All,
    Only(Status),
    /// Open and without activity for longer than the campaign's threshold
    /// ("Rezagadas"): the instants are [`ListFilter::stale_cutoffs`].
    Stale,
}

/// What the search box asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Search {
    /// Digits only: a folio, or the beginning of a phone number.
    Number(String),
    /// Anything else: part of the customer's name or of the channel's code,
    /// already folded (see [`crate::domain::text::fold`]); shorter than
    /// three characters, their beginning (see
    /// [`super::backend::MIN_SUBSTRING_CHARS`]).
    Text(String),
}

/// The order of the list: by a key instant and the folio, each on an
/// index for every filter of the table (migrations 0001 and 0021).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ListOrder {
    /// "Actividad más reciente": latest activity first (the default).
    #[default]
    Recent,
    /// "Sin actividad hace más tiempo": earliest activity first.
    Idle,
    /// "Más tiempo en el estatus": earliest `status_since` first.
    InStatus,
}

impl ListOrder {
    /// The conversation column the order reads.
    fn column(self) -> &'static str {
        match self {
            ListOrder::Recent | ListOrder::Idle => "last_activity_at",
            ListOrder::InStatus => "status_since",
        }
    }

    /// Whether the page shows the latest key first.
    fn descending(self) -> bool {
        self == ListOrder::Recent
    }

    /// A row's key in this order (the cursor holds it with the folio).
    pub fn key(self, row: &ConversationRow) -> Ts {
        match self {
            ListOrder::Recent | ListOrder::Idle => row.last_activity_at,
            ListOrder::InStatus => row.status_since,
        }
    }
}

impl ListFilter {
    /// Whether the status tabs of these filters are sums of kept totals:
    /// the filters are at most a campaign, a channel kind and an agent (one,
    /// or the disconnected ones). The status, the order and the cutoffs of
    /// the Rezagadas tab do not change the tabs' counts. See
    /// [`Self::totals_table`] for which totals.
    pub fn counts_from_totals(&self) -> bool {
        *self
            == ListFilter {
                status: self.status,
                campaign_id: self.campaign_id,
                agent_id: self.agent_id,
                channel_kind: self.channel_kind,
                agent_offline: self.agent_offline,
                stale_cutoffs: self.stale_cutoffs.clone(),
                order: self.order,
                ..ListFilter::default()
            }
    }

    /// The kept totals these filters' tabs are summed from, when they are
    /// (see [`Self::counts_from_totals`]): per campaign and channel
    /// (migrations 0006 and 0024), or, by agent, per agent, campaign and
    /// channel (migration 0027). Both tables have the columns the filter
    /// conditions name, so [`push_conditions`] filters them as it filters
    /// conversations.
    fn totals_table(&self) -> Option<&'static str> {
        let by_agent = self.agent_id.is_some() || self.agent_offline;
        self.counts_from_totals().then_some(if by_agent {
            "agent_conversation_counts"
        } else {
            "conversation_counts"
        })
    }

    /// Whether a conversation in `status` can match these filters: "Agente
    /// desconectado" is only ever an Asignada or En Proceso conversation,
    /// so its other tabs are none without counting them (each of those
    /// counts walked its status for rows it could never take).
    fn may_hold(&self, status: Status) -> bool {
        !self.agent_offline || WITH_AN_AGENT_AT_WORK.contains(&status)
    }

    /// Whether the status tab asked for can hold no row of these filters
    /// (see [`Self::may_hold`]): "Agente desconectado"'s Cancelada tab
    /// walked every cancelled conversation for none.
    fn tab_holds_nothing(&self) -> bool {
        matches!(self.status, Some(StatusFilter::Only(status)) if !self.may_hold(status))
    }
}

/// The statuses of a conversation an agent is working on: what "Agente
/// desconectado" lists (and the only tabs it counts).
///
/// Both are open: a disconnected agent's work is found in the agents' open
/// ranges (see `Arm::push`).
const WITH_AN_AGENT_AT_WORK: [Status; 2] = [Status::Assigned, Status::InProgress];

/// A position in the list: the key of [`ListFilter::order`] and the folio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// Rows after this one in the page order (the next page).
    After(Ts, i64),
    /// Rows before this one (the previous page).
    Before(Ts, i64),
}

/// The Mensajes filters, already parsed and valid. Scope is applied on top.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListFilter {
    pub status: Option<StatusFilter>,
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub channel_kind: Option<ChannelKind>,
    pub started_from: Option<Ts>,
    pub started_before: Option<Ts>,
    pub search: Option<Search>,
    /// Only Asignada or En Proceso conversations whose agent is disconnected.
    pub agent_offline: bool,
    /// For [`StatusFilter::Stale`]: per campaign, the activity before which
    /// an open conversation is stuck (from [`super::Store::stale_thresholds`]);
    /// a campaign not listed has none. Part of the view's cache key, so a
    /// cached view of stuck conversations lasts as long as its cutoffs.
    pub stale_cutoffs: Vec<(Uuid, Ts)>,
    /// The page order (counts do not depend on it).
    pub order: ListOrder,
}

from_row! {
    /// One row of the Mensajes table.
    #[derive(Debug, Clone)]
    pub struct ConversationRow {
        pub id: Uuid,
        pub folio: i64,
        pub campaign_id: Uuid,
        pub channel_id: Uuid,
        pub contact_id: Uuid,
        #[try_from(String)]
        pub status: Status,
        pub version: i64,
        pub agent_id: Option<Uuid>,
        pub agent_name: Option<String>,
        /// The agent's presence (false without an agent).
        pub agent_connected: bool,
        pub contact_name: Option<String>,
        pub contact_external_id: String,
        #[try_from(String)]
        pub channel_kind: ChannelKind,
        pub channel_name: String,
        pub campaign_name: String,
        pub started_at: Ts,
        pub last_activity_at: Ts,
        /// When it entered its current status.
        pub status_since: Ts,
        /// Its campaign's threshold: open and without activity for longer,
        /// it is stuck ("rezagada").
        pub stale_after_minutes: i64,
        pub closed_at: Option<Ts>,
        pub closer_name: Option<String>,
        pub category_name: Option<String>,
        pub subcategory_name: Option<String>,
        pub closure_comment: Option<String>,
        /// The folio of the final conversation this one restarted, if any.
        pub reactivates_folio: Option<i64>,
    }
}

impl ConversationRow {
    /// The state the transition functions start from.
    pub fn to_domain(&self) -> Conversation {
        Conversation {
            id: self.id,
            folio: self.folio,
            campaign_id: self.campaign_id,
            channel_id: self.channel_id,
            contact_id: self.contact_id,
            status: self.status,
            version: self.version,
            agent_id: self.agent_id,
        }
    }
}

/// One page of the list.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub rows: Vec<ConversationRow>,
    /// There are newer rows before this page.
    pub has_newer: bool,
    /// There are older rows after this page.
    pub has_older: bool,
}

/// What a Mensajes view shows: its page, the status counts of its scope
/// and filters (status aside), and their Rezagadas count.
#[derive(Debug, Clone, Default)]
pub struct ViewCounts {
    pub page: ListPage,
    pub counts: Vec<(Status, TabCount)>,
    pub stale_count: TabCount,
    /// The search matched more than [`BROAD_SEARCH_CONTACTS`] customers:
    /// the page walked the order checking each row's customer, and the
    /// tabs were not counted (`counts` is empty).
    pub broad_search: bool,
}

/// A name search that matches more customers than this is *broad*: its
/// page walks the order's index and checks each row's customer, instead of
/// gathering every conversation of every matching customer first, and its
/// tabs are not counted.
///
/// Gathering costs what the customers have: "cl" (the start of every name
/// in the benchmark's data) gathered all 1,000,000 conversations, 4.9 s a
/// view. A walk costs what the page needs, which is little exactly when
/// many customers match. Counting a broad search's tabs would read up to
/// [`COUNT_CAP`] matches per status at the density of the matches (for a
/// name shared by one customer in a hundred, 100,000 rows per status), so
/// the tabs say instead that the search is too broad to count, and the
/// bulk page still counts every match before it acts.
pub const BROAD_SEARCH_CONTACTS: i64 = 1_000;

/// A status tab counts at most this many conversations, then says "more".
///
/// A count the database cannot take from its totals (a date range, an
/// agent, a search, and every Rezagadas count, since being stuck depends
/// on the clock) reads one index entry per conversation counted: at
/// 1,000,000 conversations an uncapped tab read up to a million entries on
/// every view, and the view's cost grew with the table. Capped, a view
/// reads at most this many entries per status, whatever the table's size.
/// The exact number is one click away where a decision needs it: the bulk
/// page counts every match before it acts, and Reportes counts closures.
pub const COUNT_CAP: i64 = 1_000;

/// A status tab's count: exact, or "at least `n`" when a status reached
/// [`COUNT_CAP`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TabCount {
    pub n: i64,
    /// There are more than `n`: a status counted reached the cap.
    pub more: bool,
}

impl TabCount {
    pub const fn exact(n: i64) -> TabCount {
        TabCount { n, more: false }
    }

    /// A count read with `limit COUNT_CAP + 1`: `COUNT_CAP + 1` rows
    /// means more than the cap.
    pub const fn from_capped(read: i64) -> TabCount {
        if read > COUNT_CAP {
            TabCount {
                n: COUNT_CAP,
                more: true,
            }
        } else {
            TabCount::exact(read)
        }
    }
}

impl std::ops::Add for TabCount {
    type Output = TabCount;

    /// The count of two disjoint sets: "at least" if either was.
    fn add(self, other: TabCount) -> TabCount {
        TabCount {
            n: self.n + other.n,
            more: self.more || other.more,
        }
    }
}

impl std::iter::Sum for TabCount {
    fn sum<I: Iterator<Item = TabCount>>(iter: I) -> TabCount {
        iter.fold(TabCount::default(), |a, b| a + b)
    }
}

from_row! {
    /// One history row, with the names it refers to (kept after deactivation).
    #[derive(Debug, Clone)]
    pub struct HistoryRow {
        pub at: Ts,
        #[try_from(String)]
        pub kind: EventKind,
        pub from_status: Option<String>,
        #[try_from(String)]
        pub to_status: Status,
        pub from_agent_name: Option<String>,
        pub to_agent_name: Option<String>,
        pub category_name: Option<String>,
        pub subcategory_name: Option<String>,
        pub comment: Option<String>,
        #[try_from(String)]
        pub actor_kind: ActorKind,
        pub actor_name: Option<String>,
        /// The automatic-cancellation rule that wrote the row, and its name.
        pub rule_id: Option<Uuid>,
        pub rule_name: Option<String>,
    }
}

/// Which conversation a reader names: the console names it by folio, the
/// API by id.
#[derive(Debug, Clone, Copy)]
pub enum ConversationKey {
    Folio(i64),
    Id(Uuid),
}

/// A conversation with everything its page shows, the console's and the
/// API's (see [`super::Store::conversation_reads`]).
#[derive(Debug, Clone)]
pub struct ConversationReads {
    pub row: ConversationRow,
    pub closure_ids: ClosureIds,
    /// Its full history, newest first.
    pub history: Vec<HistoryRow>,
    /// The folio of the conversation that restarted this one when the
    /// customer wrote again after its closing, if any.
    pub restarted_as: Option<i64>,
    /// The automatic nudges sent to it, oldest first.
    pub nudges: Vec<NudgeSent>,
    /// The page of its transcript asked for.
    pub transcript: TranscriptPage,
}

/// The columns of [`ConversationRow`], up to `from` (the source follows).
///
/// This macro, [`row_joins!`] and [`history_select!`] expand to string
/// literals only: `concat!` composes them into `const` statements here and
/// in `transitions` (PostgreSQL's transition answers with the row it wrote),
/// which a `const &str` cannot be.
///
/// The closer, closure category and sub-category and the restart's folio
/// are looked up here, one primary key each for the rows shown, rather than
/// joined in [`row_joins!`]: each join was one more table in PostgreSQL's
/// search of join orders, and a page spent 30 to 80 ms being planned for 2
/// to 20 ms of run at 1,000,000 conversations (BENCHMARKS.md, eighth
/// session). No filter reads them.
macro_rules! row_columns {
    () => {
        concat!(
            "select ",
            $crate::db::conversations::row_column_list!(),
            " from "
        )
    };
}

/// [`row_columns!`]'s list of columns alone, without `select` and `from`,
/// for a statement that reads more columns of the row (see
/// [`conversation_record!`]). A literal for `concat!`, as [`row_columns!`].
macro_rules! row_column_list {
    () => {
        "c.id, c.folio, c.campaign_id, c.channel_id, c.contact_id, \
        c.status, c.version, c.agent_id, a.name as agent_name, \
        coalesce(a.connected, false) as agent_connected, k.name as contact_name, k.external_id as contact_external_id, \
        h.kind as channel_kind, h.name as channel_name, p.name as campaign_name, \
        c.started_at, c.last_activity_at, \
        coalesce(c.status_since, c.started_at) as status_since, \
        p.stale_after_minutes, c.closed_at, \
        (select cb.name from users cb where cb.id = c.closed_by) as closer_name, \
        (select cat.name from closure_categories cat \
            where cat.id = c.closure_category_id) as category_name, \
        (select sub.name from closure_subcategories sub \
            where sub.id = c.closure_subcategory_id) as subcategory_name, \
        c.closure_comment, \
        (select prev.folio from conversations prev \
            where prev.id = c.reactivates_id) as reactivates_folio"
    };
}

/// The joins that name a conversation's contact, channel, campaign and
/// agent (the closure's names are looked up in [`row_columns!`]); `c` is
/// the conversation (or a derived table of them).
/// A literal for `concat!`, as [`row_columns!`].
macro_rules! row_joins {
    () => {
        " join contacts k on k.id = c.contact_id \
        join channels h on h.id = c.channel_id \
        join campaigns p on p.id = c.campaign_id \
        left join users a on a.id = c.agent_id "
    };
}

// A PostgreSQL transition answers with the row it wrote (see `transitions`).
pub(super) use {row_column_list, row_columns, row_joins};

/// Columns of [`ConversationRow`]; `c` is the conversation.
pub(super) const ROW_SELECT: &str = concat!(row_columns!(), "conversations c", row_joins!());

/// One conversation's [`ConversationRow`] and [`ClosureIds`] (the API
/// names the closure and the conversation restarted by id; a reader of the
/// row alone ignores them), where `$key = $1`; the caller checks the
/// scope. A literal for `concat!`, as [`row_columns!`].
macro_rules! conversation_record {
    ($key:literal) => {
        concat!(
            "select c.reactivates_id, c.closure_category_id, c.closure_subcategory_id, ",
            row_column_list!(),
            " from conversations c",
            row_joins!(),
            " where ",
            $key,
            " = $1"
        )
    };
}

/// One conversation by folio (see [`conversation_record!`]).
pub(super) const CONVERSATION_BY_FOLIO: &str = conversation_record!("c.folio");
/// One conversation by id (see [`conversation_record!`]).
pub(super) const CONVERSATION_BY_ID: &str = conversation_record!("c.id");

/// Conversation `$folio` read on `$conn` (a pool or a held connection of
/// either backend), if `$scope` covers it: evaluates to
/// `Result<Option<ConversationRow>, sqlx::Error>`. The one scoped look-up by
/// folio of every reader that goes on reading on the same connection; a
/// macro because the backends' connections are different types.
macro_rules! scoped_by_folio {
    ($conn:expr, $scope:expr, $folio:expr) => {
        sqlx::query_as::<_, $crate::db::ConversationRow>(
            $crate::db::conversations::CONVERSATION_BY_FOLIO,
        )
        .bind($folio)
        .fetch_optional($conn)
        .await
        .map(|row| row.filter(|r| $scope.allows(r.campaign_id)))
    };
}
pub(super) use scoped_by_folio;

from_row! {
    /// The ids behind a closed conversation's names, for the API: the
    /// conversation it restarted, its closure category and sub-category.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ClosureIds {
        pub reactivates_id: Option<Uuid>,
        pub closure_category_id: Option<Uuid>,
        pub closure_subcategory_id: Option<Uuid>,
    }
}

/// The columns and joins of [`HistoryRow`] for conversation `$1`, newest first.
/// A literal for `concat!`, as [`row_columns!`].
macro_rules! history_select {
    () => {
        "select e.at, e.kind, e.from_status, e.to_status, \
        fa.name as from_agent_name, ta.name as to_agent_name, \
        cat.name as category_name, sub.name as subcategory_name, e.comment, \
        e.actor_kind, ac.name as actor_name, e.auto_cancel_rule_id as rule_id, \
        acr.name as rule_name \
        from conversation_events e \
        left join users fa on fa.id = e.from_agent_id \
        left join users ta on ta.id = e.to_agent_id \
        left join users ac on ac.id = e.actor_id \
        left join closure_categories cat on cat.id = e.category_id \
        left join closure_subcategories sub on sub.id = e.subcategory_id \
        left join auto_cancel_rules acr on acr.id = e.auto_cancel_rule_id \
        where e.conversation_id = $1 order by e.at desc, e.id desc"
    };
}

/// The whole history of conversation `$1`, newest first.
pub(super) const HISTORY_SELECT: &str = history_select!();
/// The latest history row of conversation `$1`.
pub(super) const LATEST_EVENT_SELECT: &str = concat!(history_select!(), " limit 1");

/// The smallest digit string greater than every string that starts with the
/// digit string `prefix` ("5519" → "552"), or `None` for all nines.
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut digits: Vec<u8> = prefix.bytes().collect();
    while let Some(last) = digits.pop() {
        if last < b'9' {
            digits.push(last + 1);
            return String::from_utf8(digits).ok();
        }
    }
    None
}

/// Phone prefixes a digit search may mean: as typed, and with Mexico's
/// country code when the person typed a national number.
pub(super) fn phone_prefixes(digits: &str) -> Vec<String> {
    // Fewer digits than an area code and the start of a number would match
    // a large share of all contacts: too broad to be a phone search (a short
    // number still finds its folio).
    if digits.len() < MIN_PHONE_DIGITS {
        return Vec::new();
    }
    let mut prefixes = vec![digits.to_owned()];
    if !digits.starts_with("52") {
        prefixes.push(format!("52{digits}"));
    }
    prefixes
}

/// Fewest digits searched as the beginning of a phone number.
pub const MIN_PHONE_DIGITS: usize = 6;

/// Appends ` and …` conditions for scope and filters to a query builder whose
/// conversation alias is `c`, on either backend. Reports, the CSV export and
/// bulk selections filter exactly like the table.
pub(super) fn push_conditions<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
    with_status: bool,
) {
    push_filter_conditions(qb, scope, filter, with_status, false);
}

/// [`push_conditions`] for one page of the list: the conditions that
/// another index could serve are kept off it (see
/// [`Backend::NOT_AN_INDEX`]), so the page walks the index of its order and
/// stops at 51 rows instead of sorting every row in a date range, of a
/// channel, or (in "Más tiempo en el estatus") stuck. Found by
/// `tests/query_plans.rs` enumerating every combination of filters: SQLite
/// without statistics chose those indexes and sorted (the dates: a
/// campaign's cancelled conversations started before a day, all of them).
fn push_page_conditions<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
) {
    push_filter_conditions(qb, scope, filter, true, true);
}

fn push_filter_conditions<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
    with_status: bool,
    walk_the_order: bool,
) {
    let off = if walk_the_order { DB::NOT_AN_INDEX } else { "" };
    // One agent's rows are ranges of the agent's own indexes: the scope,
    // the chosen campaign and the dates are checked on them, not walked.
    // A campaign's ranges hold every agent's rows: an Administrador of ten
    // campaigns merged each campaign's page for one agent's rows (80 ms at
    // 1,000,000 conversations), and a count by agent and dates counted a
    // status's 30 days for one agent's (45 ms).
    let by_agent = filter.agent_id.is_some();
    // One agent's rows are read from the agent's open or closed range,
    // except a count of one status under a start date, a range of the
    // agent's start dates (see `counts_agents_starts`).
    let agent_range = by_agent && (walk_the_order || !counts_agents_starts(filter));
    let campaign_off = if by_agent { DB::NOT_AN_INDEX } else { "" };
    // A Rezagadas count under a start date reads the campaigns' stuck
    // ranges from that date (see `StuckRanges`), each row checked for its
    // start. PostgreSQL, expecting the open rows spread evenly over the
    // start dates, read the start index instead: 70,000 closed rows passed
    // for 1,001 stuck (14.5 ms of an Administrador of ten campaigns'
    // "Rezagadas desde-hasta" at 1,000,000 conversations; 3.5 on the
    // ranges).
    let stuck_since = !walk_the_order
        && !by_agent
        && filter.status == Some(StatusFilter::Stale)
        && filter.started_from.is_some();
    let date_off = if stuck_since {
        DB::TIME_NOT_AN_INDEX
    } else if agent_range {
        (DB::NOT_AN_INDEX, "")
    } else {
        (off, "")
    };
    push_scope_campaigns(qb, &format!("{campaign_off}c"), scope);
    if with_status {
        push_status_tab_condition(qb, filter, off, walk_the_order, agent_range);
    }
    if filter.agent_offline {
        push_offline_agent_condition(qb, off);
    }
    if let Some(id) = filter.campaign_id {
        qb.push(format_args!(" and {campaign_off}c.campaign_id = "));
        DB::push_bind(qb, id);
    }
    match filter.agent_id {
        Some(EACH_ARM_AGENT) => {
            qb.push(" and c.agent_id = arm.column1");
        }
        Some(id) => {
            qb.push(" and c.agent_id = ");
            DB::push_bind(qb, id);
        }
        None => {}
    }
    if let Some(kind) = filter.channel_kind {
        qb.push(format_args!(
            " and {off}c.channel_id in (select id from channels where kind = "
        ));
        DB::push_bind(qb, kind.as_str());
        qb.push(")");
    }
    push_date_conditions(qb, filter, date_off, walk_the_order, agent_range);
    if let Some(search) = &filter.search {
        push_search_condition(qb, search);
    }
}

/// Appends ` and …` for the status tab of `filter` ("Abiertas" when none),
/// the conditions that another index could serve prefixed with `off`.
/// With `agent_range` (one agent's rows, read from the agent's open or
/// closed range), a status says whether it is open too.
fn push_status_tab_condition<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    filter: &ListFilter,
    off: &str,
    walk_the_order: bool,
    agent_range: bool,
) {
    match filter.status.unwrap_or(StatusFilter::Open) {
        StatusFilter::Open => {
            qb.push(" and c.is_open = ");
            DB::push_bool(qb, true);
        }
        StatusFilter::All => {}
        StatusFilter::Only(status) => {
            push_status_condition(qb, status);
            if agent_range {
                // A condition on the agent's range, not a range of its own.
                qb.push(DB::STATUS_NOT_AN_INDEX);
                // Said twice, as the value it follows from: the agent's
                // open or closed range of the page's order, not every
                // conversation the agent ever had.
                qb.push(" and c.is_open = ");
                DB::push_bool(qb, status.is_open());
            }
        }
        StatusFilter::Stale => {
            // Stuck is a range of activity: in the activity orders it
            // is a range of the order's own index.
            let off = match filter.order {
                ListOrder::InStatus => off,
                ListOrder::Recent | ListOrder::Idle => "",
            };
            let by_agent = filter.agent_id.is_some();
            // A count's stuck ranges start at the start date: activity
            // never precedes the start (a page's walk and one agent's
            // range get that bound with the dates).
            let since = filter.started_from.filter(|_| !walk_the_order && !by_agent);
            let stuck = StuckRanges {
                cutoffs: &filter.stale_cutoffs,
                since,
            };
            push_stale_condition(qb, &stuck, off, by_agent, walk_the_order)
        }
    }
}

/// Appends ` and c.status = '…'`: a fixed word of the code, so a literal
/// (see `Backend::push_bool`), which PostgreSQL's statistics can weigh.
fn push_status_condition<DB: Backend>(qb: &mut QueryBuilder<DB>, status: Status) {
    qb.push(format_args!(" and c.status = '{}'", status.as_str()));
}

/// Appends ` and …` for "Agente desconectado": an Asignada or En Proceso
/// conversation whose agent is disconnected, each condition prefixed with
/// `off`.
fn push_offline_agent_condition<DB: Backend>(qb: &mut QueryBuilder<DB>, off: &str) {
    push_at_work_condition(qb, off);
    qb.push(format_args!(
        " and {off}c.agent_id in (select id from users where role = 'agent' and connected = "
    ));
    DB::push_bool(qb, false);
    qb.push(")");
}

/// Appends ` and …` for the statuses of "Agente desconectado" (Asignada
/// and En Proceso: an agent at work), prefixed with `off`.
fn push_at_work_condition<DB: Backend>(qb: &mut QueryBuilder<DB>, off: &str) {
    // Fixed words of the code, so literals.
    let statuses = WITH_AN_AGENT_AT_WORK.map(|s| format!("'{}'", s.as_str()));
    qb.push(format_args!(
        " and {off}c.status in ({})",
        statuses.join(", ")
    ));
}

/// Appends the start date range (`desde`, `hasta`) of `filter`; for a page
/// (`walk_the_order`), with the bound of the order's walk, and for one
/// agent's rows (`by_agent`), with the bound of the agent's activity range.
fn push_date_conditions<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    filter: &ListFilter,
    (off, off_end): (&str, &str),
    walk_the_order: bool,
    by_agent: bool,
) {
    if let Some(from) = filter.started_from {
        qb.push(format_args!(" and {off}c.started_at{off_end} >= "));
        DB::push_bind(qb, from);
        // A conversation's activity and its status's start are never
        // earlier than its start (the module's "Activity never goes
        // back"), so none started since `from` lies below `from` in an
        // index of either.
        if walk_the_order {
            // The walk's own bound. Without it, a page of conversations
            // started since a date walked past every older one (1.2 s for
            // "canceladas desde" at 1,000,000).
            qb.push(format_args!(" and c.{} >= ", filter.order.column()));
            DB::push_bind(qb, from);
        } else if by_agent {
            // A count of one agent's: the agent's rows active since then,
            // a range of `(agent_id, last_activity_at, folio)`, not every
            // closed row of the agent for each closed status (25 ms at
            // 1,000,000).
            qb.push(" and c.last_activity_at >= ");
            DB::push_bind(qb, from);
        }
    }
    if let Some(before) = filter.started_before {
        qb.push(format_args!(" and {off}c.started_at{off_end} < "));
        DB::push_bind(qb, before);
    }
}

/// Appends ` and …` for conversations open and without activity since
/// their campaign's cutoff, the activity condition prefixed with `off`.
///
/// Without `by_agent`: one `(campaign, activity)` range per campaign, each
/// on the `(campaign_id, is_open, last_activity_at, folio)` index. With
/// it (one agent's Rezagadas), the campaigns are checked on the agent's
/// open rows, the agent's range of `(agent_id, is_open, last_activity_at,
/// folio)` or of its `status_since` twin: a count reads it below the
/// latest cutoff; a page (`walk`) walks it in its order and checks the
/// cutoff on each row. SQLite without statistics, given both the cutoff
/// and a page's cursor as bounds of the activity, walked every agent's
/// open rows (`(is_open, last_activity_at, folio)`) instead. The
/// campaigns' ranges hold every agent's stuck rows: a Super
/// Administrador's "Rezagadas" of one agent walked all 50 of them for that
/// agent's few (up to 1 s at 1,000,000 conversations).
fn push_stale_condition<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    stuck: &StuckRanges,
    off: &str,
    by_agent: bool,
    walk: bool,
) {
    // A walk is in the order's index, one campaign's range of it (the
    // arm's own condition) or all of them: the campaigns are checked on
    // the rows walked, not read as ranges of another index and sorted.
    let campaign_off = if by_agent || walk {
        DB::NOT_AN_INDEX
    } else {
        ""
    };
    qb.push(" and c.is_open = ");
    DB::push_bool(qb, true);
    let Some(latest) = stuck.cutoffs.iter().map(|(_, cutoff)| *cutoff).max() else {
        qb.push(" and 1 = 0");
        return;
    };
    if by_agent {
        let latest_off = if walk { DB::NOT_AN_INDEX } else { "" };
        qb.push(format_args!(" and {latest_off}c.last_activity_at < "));
        DB::push_bind(qb, latest);
    }
    let off = if by_agent { DB::NOT_AN_INDEX } else { off };
    qb.push(" and ");
    push_cutoffs_either(qb, stuck, campaign_off, off);
}

/// The stuck rows' activity ranges: below each campaign's cutoff, and
/// from `since` when given (a count under a start date: the campaigns'
/// stuck ranges were read from their oldest activity, every row checked
/// for its start; 30 to 40 ms for a Super Administrador's "Rezagadas
/// desde" at 1,000,000 conversations on SQLite).
struct StuckRanges<'a> {
    cutoffs: &'a [(Uuid, Ts)],
    since: Option<Ts>,
}

/// Whether `filter` counts one status of one agent under a start date
/// range: a range of `(agent_id, status, started_at, campaign_id)`, which
/// answers the date and the scope without reading the rows.
fn counts_agents_starts(filter: &ListFilter) -> bool {
    filter.agent_id.is_some()
        && filter.search.is_none()
        && matches!(filter.status, Some(StatusFilter::Only(_)))
        && (filter.started_from.is_some() || filter.started_before.is_some())
}

/// Appends, on SQLite, the index one agent's rows are read through (the
/// caller's conditions name the agent): the agent's open or closed range
/// in the order of `filter` for a status tab, every row of the agent in
/// that order for "Todas". SQLite without statistics (as Relevo runs it)
/// guesses every index's equality alike and took the narrowest: given two
/// bounds on the activity (a start date's and a page's cursor, or the
/// Rezagadas cutoff and a cursor), it walked every open conversation,
/// `(is_open, last_activity_at, folio)`, for the agent's few, and a
/// closed status's whole range for the agent's cancelled ones. Found by
/// `tests/query_plans.rs`. A count (`counting`) of one status under a
/// start date reads the agent's start range of it instead (see
/// [`counts_agents_starts`]).
fn push_agent_index<DB: Backend>(qb: &mut QueryBuilder<DB>, filter: &ListFilter, counting: bool) {
    let Some(indexed_by) = DB::INDEXED_BY else {
        return;
    };
    let open_or_closed = filter.status != Some(StatusFilter::All);
    let index = match (filter.order, open_or_closed) {
        _ if counting && counts_agents_starts(filter) => "conversations_agent_status_started_idx",
        (ListOrder::InStatus, true) => "conversations_agent_open_status_since_idx",
        (ListOrder::InStatus, false) => "conversations_agent_status_since_idx",
        (ListOrder::Recent | ListOrder::Idle, true) => "conversations_agent_open_activity_idx",
        (ListOrder::Recent | ListOrder::Idle, false) => "conversations_agent_activity_idx",
    };
    qb.push(indexed_by);
    qb.push(index);
}

/// Appends `(campaign in (…) and activity < …) or …`, one term for each
/// distinct cutoff of `cutoffs` with the campaigns that have it. One term
/// per campaign made every Super Administrador's view (each counts its
/// Rezagadas) an `or` of 50 terms at the benchmark's 50 campaigns, which
/// PostgreSQL planned term by term; campaigns mostly share a threshold.
fn push_cutoffs_either<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    stuck: &StuckRanges,
    campaign_off: &str,
    off: &str,
) {
    let mut groups: Vec<(Ts, Vec<Uuid>)> = Vec::new();
    for (campaign, cutoff) in stuck.cutoffs {
        match groups.iter_mut().find(|(instant, _)| instant == cutoff) {
            Some((_, campaigns)) => campaigns.push(*campaign),
            None => groups.push((*cutoff, vec![*campaign])),
        }
    }
    push_cutoff_groups_either(qb, &groups, stuck.since, campaign_off, off);
}

/// Appends the terms of [`push_cutoffs_either`] nested as a balanced tree:
/// SQLite refuses an expression deeper than 1,000, and a chain of `or`s is
/// as deep as it is long, so a Super Administrador of a thousand campaigns
/// with as many thresholds would get an error for every view. Both
/// databases flatten nested `or`s before planning: the plans are those of
/// the chain.
fn push_cutoff_groups_either<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    groups: &[(Ts, Vec<Uuid>)],
    since: Option<Ts>,
    campaign_off: &str,
    off: &str,
) {
    match groups {
        // No campaign: nothing is stuck (the caller says so before).
        [] => {
            qb.push("1 = 0");
        }
        [(cutoff, campaigns)] => {
            qb.push(format_args!("({campaign_off}c.campaign_id"));
            match campaigns.as_slice() {
                [campaign] => {
                    qb.push(" = ");
                    DB::push_bind(qb, *campaign);
                }
                _ => {
                    qb.push(" in ");
                    DB::push_bind_list(qb, campaigns);
                }
            }
            if let Some(since) = since {
                qb.push(format_args!(" and {off}c.last_activity_at >= "));
                DB::push_bind(qb, since);
            }
            qb.push(format_args!(" and {off}c.last_activity_at < "));
            DB::push_bind(qb, *cutoff);
            qb.push(")");
        }
        _ => {
            let (first, second) = groups.split_at(groups.len() / 2);
            qb.push("(");
            push_cutoff_groups_either(qb, first, since, campaign_off, off);
            qb.push(" or ");
            push_cutoff_groups_either(qb, second, since, campaign_off, off);
            qb.push(")");
        }
    }
}

/// Appends ` and …` for what the search box asked: a folio or the start of
/// a phone number, or part of a name or address.
fn push_search_condition<DB: Backend>(qb: &mut QueryBuilder<DB>, search: &Search) {
    match search {
        Search::Number(digits) => {
            qb.push(" and (");
            match digits.parse::<i64>() {
                Ok(folio) => {
                    qb.push("c.folio = ");
                    DB::push_bind(qb, folio);
                }
                Err(_) => {
                    qb.push("1 = 0");
                }
            }
            for prefix in phone_prefixes(digits) {
                qb.push(" or c.contact_id in (select id from contacts where external_id >= ");
                let end = prefix_end(&prefix);
                DB::push_bind(qb, prefix);
                if let Some(end) = end {
                    qb.push(" and external_id < ");
                    DB::push_bind(qb, end);
                }
                qb.push(")");
            }
            qb.push(")");
        }
        Search::Text(text) => {
            qb.push(" and c.contact_id in (");
            DB::push_contacts_matching(qb, text);
            qb.push(")");
        }
    }
}

/// [`Backend::push_contacts_matching`], for a statement whose backend is
/// inferred where it runs.
fn push_contacts_matching_of<DB: Backend>(qb: &mut QueryBuilder<DB>, text: &str) {
    DB::push_contacts_matching(qb, text);
}

/// Appends ` and …` for a broad name search checked along a walk (see
/// [`BROAD_SEARCH_CONTACTS`]): one look-up of the row's customer by its
/// primary key per row walked. The inner `k` is the customer of the row
/// checked, whatever the outer statement calls `k`.
///
/// Where the walk is joined to the row's other tables (an unmerged page),
/// the check is a scalar sub-query, which the database evaluates on each
/// row as it is walked. SQLite (3.51) turns an `exists` into a join placed
/// after every other join of the row, and with statistics gives it a Bloom
/// filter built first by reading every contact through the `like`: 23 of
/// the 25 ms of a Super Administrador's "Canceladas" searched by a common
/// name at 1,000,000 conversations. An arm of a merged page reads the page
/// key alone, with nothing to join before the check: there SQLite runs an
/// `exists` for about half the cost of a sub-query's call per row (a Super
/// Administrador's Rezagadas by a common name took 16 ms with `exists` in
/// its 50 arms and 30 ms with the sub-query), and PostgreSQL plans it as a
/// join in every arm (see [`Backend::ARM_SEARCH_BY_EXISTS`]).
fn push_walked_search<DB: Backend>(qb: &mut QueryBuilder<DB>, search: &Search, by_exists: bool) {
    match search {
        Search::Text(text) if by_exists => {
            qb.push(" and exists (select 1 from contacts k where k.id = c.contact_id and ");
            DB::push_contact_condition(qb, text);
            qb.push(")");
        }
        Search::Text(text) => {
            qb.push(" and (select ");
            DB::push_contact_condition(qb, text);
            qb.push(" from contacts k where k.id = c.contact_id)");
        }
        // A folio or a phone's beginning is never walked (see `Store::broad_search`).
        Search::Number(_) => push_search_condition(qb, search),
    }
}

/// Appends the keyset cursor condition and the page order and limit.
fn push_page<DB: Backend>(qb: &mut QueryBuilder<DB>, cursor: Option<Cursor>, order: ListOrder) {
    push_cursor(qb, cursor, order);
    push_order_limit(qb, cursor, "c.", order);
}

/// Appends the keyset cursor condition: the rows past `cursor` in `order`.
fn push_cursor<DB: Backend>(qb: &mut QueryBuilder<DB>, cursor: Option<Cursor>, order: ListOrder) {
    let (later, earlier) = if order.descending() {
        ("<", ">")
    } else {
        (">", "<")
    };
    let column = order.column();
    let (at, folio, op) = match cursor {
        None => return,
        Some(Cursor::After(at, folio)) => (at, folio, later),
        Some(Cursor::Before(at, folio)) => (at, folio, earlier),
    };
    qb.push(format_args!(" and (c.{column}, c.folio) {op} ("));
    DB::push_bind(qb, at);
    qb.push(", ");
    DB::push_bind(qb, folio);
    qb.push(")");
}

/// Appends the page order (reversed for a previous page, which is fetched
/// from the cursor outwards) and the limit; `prefix` qualifies the columns.
fn push_order_limit<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    cursor: Option<Cursor>,
    prefix: &str,
    order: ListOrder,
) {
    let backwards = matches!(cursor, Some(Cursor::Before(..)));
    let direction = if order.descending() != backwards {
        "desc"
    } else {
        "asc"
    };
    let column = order.column();
    qb.push(format_args!(
        " order by {prefix}{column} {direction}, {prefix}folio {direction} limit "
    ));
    DB::push_bind(qb, PAGE_SIZE + 1);
}

/// The ranges whose newest rows are merged for a page, when that is the
/// better plan: an Administrador's few campaigns, or one chosen campaign.
/// Each campaign's page comes from its own ordered index range, so a page
/// costs at most 51 index entries per campaign instead of sorting every open
/// conversation of the scope. A search drives from the contacts instead.
fn merged_arms(scope: &Scope, filter: &ListFilter) -> Option<Arms> {
    if filter.search.is_some() {
        return None;
    }
    if filter.agent_id.is_some() {
        // One range of the agent's index (see `push_filter_conditions`).
        return None;
    }
    if filter.status == Some(StatusFilter::Stale) {
        // Each campaign has its own cutoff: one range per campaign, for a
        // Super Administrador too (unless they all have the same, see
        // `Store::view_source`).
        return Some(Arms::Campaigns(
            filter
                .stale_cutoffs
                .iter()
                .map(|(campaign, _)| *campaign)
                .filter(|c| filter.campaign_id.is_none_or(|chosen| chosen == *c))
                .filter(|c| match scope {
                    Scope::All => true,
                    Scope::Campaigns(ids) => ids.contains(c),
                })
                .collect(),
        ));
    }
    match (filter.campaign_id, scope) {
        (Some(campaign), _) => Some(Arms::Campaigns(vec![campaign])),
        (None, Scope::Campaigns(ids)) => Some(Arms::Campaigns(ids.clone())),
        (None, Scope::All) => None,
    }
}

/// Whether a Super Administrador's Rezagadas page is one walk of the open
/// rows' order (see [`Arms::Whole`]): every campaign has the same cutoff
/// (they share a threshold, 30 minutes unless changed), so every open
/// conversation below it is stuck; and none was left out of `filter`
/// (`all_campaigns`), whose rows the walk would read for nothing (those
/// without a channel of the kind asked for, or without a disconnected
/// agent's work). A chosen campaign or an agent read their own rows
/// instead; a search is checked along the walk when it is broad, and finds
/// its own rows otherwise (see [`Store::view_source`]).
fn one_walk_for_stuck(scope: &Scope, filter: &ListFilter, all_campaigns: bool) -> bool {
    let one_cutoff = match filter.stale_cutoffs.split_first() {
        Some(((_, first), rest)) => rest.iter().all(|(_, cutoff)| cutoff == first),
        None => false,
    };
    filter.status == Some(StatusFilter::Stale)
        && scope == &Scope::All
        && filter.campaign_id.is_none()
        && filter.agent_id.is_none()
        && one_cutoff
        && all_campaigns
}

/// Appends the whole list query after an optional prefix (`explain …`):
/// columns, source, joins, conditions, cursor, order and limit, on either
/// backend; `list_conversations` and `explain_list` share it, so the plan
/// that tests check is the plan that serves. A statement with a search
/// starts with [`push_search_matches`].
fn push_list_query<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
    cursor: Option<Cursor>,
    arms: Option<&Arms>,
    walked: Option<&Search>,
) {
    qb.push(row_columns!());
    let arms = arms
        .cloned()
        .or_else(|| merged_arms(scope, filter))
        .or_else(|| (filter.agent_offline && filter.search.is_none()).then_some(Arms::Whole))
        // Beyond, the page is found by the conditions and sorted, as an
        // unmerged page is: slower, but one statement that SQLite accepts.
        .filter(|arms| arms.keys().len() <= MAX_MERGED_ARMS);
    match arms {
        Some(arms) => push_merged_source(qb, scope, &arms, filter, cursor, walked),
        None => match &filter.search {
            // A search drives from what it matched (a folio, the contacts
            // whose phone or name matched, in the statement's
            // `search_matches`): a union the planner cannot turn into a
            // walk of the activity index filtering every row. As for the
            // merged campaigns, the page is cut to its 51 rows before
            // the joins: PostgreSQL's generic plan cannot know how many
            // conversations a phone prefix matches, and planned hash
            // joins of `campaigns` and `channels` sized for thousands.
            Some(_) => {
                qb.push("(select * from ");
                qb.push(SEARCH_MATCHES);
                qb.push(" c where 1 = 1");
                let rest = ListFilter {
                    search: None,
                    ..filter.clone()
                };
                push_page_conditions(qb, scope, &rest);
                push_cut_page_joins(qb, cursor, filter.order);
            }
            None => push_found_source(qb, scope, filter, cursor, walked),
        },
    }
    push_page(qb, cursor, filter.order);
}

/// Appends the source of a page found by its conditions (no merged ranges,
/// no search's matches to drive from): the conversations walked in the
/// order's index or found by the conditions and sorted, joined to the
/// row's tables. With [`Backend::CUT_BEFORE_JOINS`] the page is cut to its
/// 51 rows before those joins, every condition being the conversation's
/// own. PostgreSQL multiplies the selectivities of a start date, the
/// activity and `is_open` as if independent (7 rows estimated for 11,015
/// of a Super Administrador's "Abiertas desde"), and joined the rows found
/// to the campaigns by a nested loop over all 50 of them before sorting: 65
/// of a view's 111 ms at 1,000,000 conversations.
///
/// Not one agent's page, which walks the agent's range, whose rows the
/// planner estimates well (migration 0030's statistics): cut, PostgreSQL
/// walked the chosen campaign's range instead and checked the agent on
/// each row (5 to 30 ms for an Administrador of ten's "Todas" of one agent
/// searched by name).
fn push_found_source<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
    cursor: Option<Cursor>,
    walked: Option<&Search>,
) {
    let cut = DB::CUT_BEFORE_JOINS && filter.agent_id.is_none();
    if cut {
        qb.push("(select c.* from ");
    }
    qb.push("conversations c");
    if filter.agent_id.is_some() {
        push_agent_index::<DB>(qb, filter, false);
    }
    if !cut {
        qb.push(row_joins!());
    }
    qb.push(" where 1 = 1");
    push_page_conditions(qb, scope, filter);
    if let Some(search) = walked {
        push_walked_search(qb, search, false);
    }
    if cut {
        push_cut_page_joins(qb, cursor, filter.order);
    }
}

/// Closes a derived table of conversations `c` opened with `(select …`:
/// cuts it to its page (cursor, order, 51 rows), then joins the row's
/// tables to those rows alone and opens the outer conditions.
fn push_cut_page_joins<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    cursor: Option<Cursor>,
    order: ListOrder,
) {
    push_page(qb, cursor, order);
    qb.push(") c");
    qb.push(row_joins!());
    qb.push(" where 1 = 1");
}

/// The ordered index ranges a page is merged from, one arm each.
#[derive(Debug, Clone)]
enum Arms {
    /// One per campaign (see [`merged_arms`]), on the campaign's
    /// indexes of the order.
    Campaigns(Vec<Uuid>),
    /// One per channel of the kind asked for, in the scope (see
    /// [`by_channel_arms`]), on `conversations_channel_activity_idx`.
    Channels(Vec<Uuid>),
    /// The whole scope, checked on the rows walked: "Agente desconectado"
    /// of a Super Administrador, split by [`status_arms`]; and a Super
    /// Administrador's "Rezagadas" when every campaign has the same cutoff,
    /// the open rows' order walked from it. One range per campaign instead
    /// (50 arms at the benchmark's 1,000,000 conversations) ran in 2 ms
    /// but took PostgreSQL 20 to 30 ms to plan, arm by arm.
    Whole,
    /// One per disconnected agent with work in view (see
    /// [`Store::offline_work`]), on the agent's index of the order, its
    /// rows checked for scope and filters as one agent's are: "Agente
    /// desconectado", whose rows are those agents' open work. Walking the
    /// campaigns' or the statuses' ranges instead read every connected
    /// agent's rows above theirs, and a disconnected agent's work is old by
    /// nature (it stopped moving when they left): a Super Administrador's
    /// "Rezagadas · Agente desconectado" read some 20,000 rows, 25 to 45 ms
    /// at 1,000,000 conversations. Each agent comes with the campaigns of
    /// their work, whose Rezagadas cutoffs are the only ones the agent's
    /// arm checks (on PostgreSQL every arm naming every campaign's cutoff
    /// made a statement of 900 parameters, planned for 80 ms).
    Agents(Vec<(Uuid, Vec<Uuid>)>),
}

impl Arms {
    /// The campaigns whose cutoffs arm `i` checks, when not all of them.
    fn campaigns_of(&self, i: usize) -> Option<&[Uuid]> {
        match self {
            Arms::Agents(work) => work.get(i).map(|(_, campaigns)| campaigns.as_slice()),
            _ => None,
        }
    }

    /// Each arm's key: its campaign or channel, or none for the whole scope.
    fn keys(&self) -> Vec<Option<(&'static str, Uuid)>> {
        match self {
            Arms::Campaigns(ids) => ids.iter().map(|id| Some(("campaign_id", *id))).collect(),
            Arms::Channels(ids) => ids.iter().map(|id| Some(("channel_id", *id))).collect(),
            Arms::Agents(work) => work
                .iter()
                .map(|(agent, _)| Some(("agent_id", *agent)))
                .collect(),
            Arms::Whole => vec![None],
        }
    }

    /// The filters and scope each arm checks its rows against. The arms
    /// are the campaigns or channels in view: the campaign (and, for
    /// channel arms, the channel kind) is in the arm's own condition, and
    /// the scope was applied in choosing them.
    fn conditions<'s>(&self, filter: &ListFilter, scope: &'s Scope) -> (ListFilter, &'s Scope) {
        match self {
            Arms::Campaigns(_) => (
                ListFilter {
                    campaign_id: None,
                    ..filter.clone()
                },
                &Scope::All,
            ),
            Arms::Channels(_) => (
                ListFilter {
                    campaign_id: None,
                    channel_kind: None,
                    ..filter.clone()
                },
                &Scope::All,
            ),
            Arms::Whole | Arms::Agents(_) => (filter.clone(), scope),
        }
    }
}

/// Whether a page by channel kind is merged from one range per channel of
/// the kind: on the "Todas" tab in an activity order, without a search.
/// Walking the activity order and skipping the other channels' rows read
/// the whole index when the kind was rare (the first
/// `?estatus=todas&canal=telegram` view took 613 ms at 1,000,000
/// conversations); a channel's own range of
/// `conversations_channel_activity_idx` costs at most 51 entries. With a
/// status tab the status-led index of the order is walked instead: that
/// index has no channel, and this one no status, so a channel's range
/// would be walked for the rows of a rare status (an index with both would
/// be two more for every customer message to update).
fn by_channel_arms(filter: &ListFilter) -> bool {
    filter.channel_kind.is_some()
        && filter.search.is_none()
        // A channel's range is mostly history: the disconnected agents'
        // work is found by status (see `status_arms`).
        && !filter.agent_offline
        && filter.status == Some(StatusFilter::All)
        && filter.order != ListOrder::InStatus
}

/// Whether no conversation of any status can match a view, which is then
/// not read at all: its campaign is out of scope, or its channel kind has
/// no channel in view (`kind_channels`, from [`Store::view_source`]; a
/// status tab of such a kind walked the whole status for none, and its
/// counts by agent or date counted up to 1000 of each status for none).
fn matches_nothing(
    scope: &Scope,
    filter: &ListFilter,
    kind_channels: Option<&[(Uuid, Uuid)]>,
) -> bool {
    filter.campaign_id.is_some_and(|c| !scope.allows(c))
        || kind_channels.is_some_and(<[(Uuid, Uuid)]>::is_empty)
}

/// Whether a view's page cannot hold a row, and is not read: a Rezagadas
/// view where no campaign in view has a cutoff (none, or none with a
/// channel of the kind), or a status tab the other filters exclude (see
/// [`ListFilter::tab_holds_nothing`]). Its other tabs are still counted.
fn page_holds_nothing(scope: &Scope, filter: &ListFilter) -> bool {
    let in_view = |campaign: Uuid| {
        scope.allows(campaign) && filter.campaign_id.is_none_or(|chosen| chosen == campaign)
    };
    let no_stuck_rows = filter.status == Some(StatusFilter::Stale)
        && !filter.stale_cutoffs.iter().any(|(c, _)| in_view(*c));
    no_stuck_rows || filter.tab_holds_nothing()
}

/// Appends ` and …` keeping the rows of `alias` (a table with a
/// `campaign_id`; `+c` keeps the condition off the indexes on SQLite) to
/// the scope's campaigns.
fn push_scope_campaigns<DB: Backend>(qb: &mut QueryBuilder<DB>, alias: &str, scope: &Scope) {
    if let Scope::Campaigns(ids) = scope {
        qb.push(format_args!(" and {alias}.campaign_id in "));
        DB::push_bind_list(qb, ids);
    }
}

/// Appends ` and …` keeping the rows of `alias` (a table with a
/// `campaign_id`) to the campaigns in view: the scope's, and the chosen one.
fn push_campaigns_in_view<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    alias: &str,
    scope: &Scope,
    filter: &ListFilter,
) {
    push_scope_campaigns(qb, alias, scope);
    if let Some(campaign) = filter.campaign_id {
        qb.push(format_args!(" and {alias}.campaign_id = "));
        DB::push_bind(qb, campaign);
    }
}

/// `filter` with only the Rezagadas cutoffs of the campaigns `keep` holds
/// (borrowed still when it keeps them all).
fn keep_cutoffs(filter: Cow<'_, ListFilter>, keep: impl Fn(&Uuid) -> bool) -> Cow<'_, ListFilter> {
    if filter.stale_cutoffs.iter().all(|(c, _)| keep(c)) {
        return filter;
    }
    let mut owned = filter.into_owned();
    owned.stale_cutoffs.retain(|(c, _)| keep(c));
    Cow::Owned(owned)
}

/// Whether a view of "Agente desconectado" is merged from each
/// disconnected agent's own range (see [`Arms::Agents`]), for `agents`
/// with work in view.
///
/// Rezagadas, and the other tabs without a start date, in any order: an
/// arm walks the agent's open range of the order (`(agent_id, is_open,
/// …)`, migration 0028), which holds no closed history to read before the
/// work in view (see `Arm::push`). Merged by campaign and status, a Super
/// Administrador's Rezagadas by "Sin actividad" was 40 arms, each finding
/// a campaign's whole Asignada range by bitmap and sorting it (54 ms at
/// 1,000,000 on PostgreSQL, 19 ms of it planning); merged by agent, 23 ms
/// ("Más tiempo en el estatus": 54 to 14). Under a start date PostgreSQL
/// intersected each agent's range with every Asignada and En Proceso
/// conversation started since (38,000 at 1,000,000) and sorted: 3 ms an
/// agent, 67 ms for a Super Administrador's "Abiertas" of 20 disconnected
/// agents, against 22 ms through the statuses' two ranges. So a dated tab
/// is merged by agent only when that is fewer arms (an Administrador of
/// ten campaigns: 4 agents for 20 ranges, 49 views over 20 ms to 24);
/// Rezagadas is bounded by its cutoffs there too, and was merged by agent
/// before. A channel kind keeps the campaigns that have one (PostgreSQL
/// planned the agents' page joined back by walking the activity index).
fn merges_by_agent(scope: &Scope, filter: &ListFilter, agents: &[(Uuid, Vec<Uuid>)]) -> bool {
    let undated = filter.started_from.is_none() && filter.started_before.is_none();
    let fewer_arms = || {
        let unsearched = ListFilter {
            search: None,
            ..filter.clone()
        };
        let ranges = merged_arms(scope, &unsearched).map_or(1, |arms| arms.keys().len());
        agents.len() < ranges * status_arms(&unsearched).len()
    };
    (filter.status == Some(StatusFilter::Stale) || undated || fewer_arms())
        && filter.channel_kind.is_none()
        && agents.len() <= MAX_AGENT_ARMS
}

/// What a view's statement is built from (see [`Store::view_source`]).
struct Source<'f> {
    /// The filters as the statement applies them.
    filter: Cow<'f, ListFilter>,
    /// The ranges the page is merged from, when the source chose them: the
    /// channels of a page by channel kind (see [`by_channel_arms`]), or the
    /// disconnected agents with work (see [`Arms::Agents`]).
    arms: Option<Arms>,
    /// No row of any status can match: nothing is read (see
    /// [`matches_nothing`]).
    nothing: bool,
    /// No row can match the page, which is not read: [`Self::nothing`], or
    /// [`page_holds_nothing`].
    no_rows: bool,
    /// Whether the search is broad (see [`BROAD_SEARCH_CONTACTS`]), when
    /// the source had to know: `None` when it was not asked.
    broad_search: Option<bool>,
}

/// Appends the source of a page merged from each arm's own page (see
/// [`Arms`], each split by [`status_arms`]), its joins and ` where 1 = 1`.
fn push_merged_source<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    arms: &Arms,
    filter: &ListFilter,
    cursor: Option<Cursor>,
    walked: Option<&Search>,
) {
    let keyed = arms.keys();
    let mut statuses = match arms {
        // An agent's range holds all of the agent's statuses: each arm
        // checks the status on its rows (see `push_offline_agent_condition`).
        Arms::Agents(_) => vec![None],
        _ => status_arms(filter),
    };
    if keyed.len() * statuses.len() > MAX_SPLIT_ARMS {
        // Found by status and sorted, as before the split, rather than
        // more arms than SQLite takes in one compound statement (500).
        statuses = vec![None];
    }
    if keyed.is_empty() || statuses.is_empty() {
        // No campaign or channel in view (none has a cutoff, or no
        // channel of the kind): an empty page.
        qb.push("(select * from conversations where 1 = 0) c");
        qb.push(row_joins!());
        qb.push(" where 1 = 0");
        return;
    }
    let (inner, arm_scope) = arms.conditions(filter, scope);
    // The merged page is cut to its 51 rows *before* the joins, so names
    // are looked up for 51 rows, not 51 per arm. Each arm reads only the
    // page key, which its (campaign, status, activity, folio) index covers:
    // the conversation rows themselves are read for the 51 kept. A
    // Rezagadas arm keeps its own campaign's cutoff only.
    match lateral_key::<DB>(arms, &statuses, filter, walked) {
        Some((column, ids)) => {
            let arm = Arm {
                key: ArmKey::EachOf(column),
                campaigns: None,
                status: None,
                filter: &inner,
                scope: arm_scope,
            };
            push_lateral_arms(qb, &ids, &arm, cursor, filter.order, walked);
        }
        None => {
            let (inner, statuses) = (&inner, &statuses);
            let arms = keyed.iter().enumerate().flat_map(|(k, key)| {
                statuses.iter().map(move |status| Arm {
                    key: key.map_or(ArmKey::Whole, |(column, id)| ArmKey::One(column, id)),
                    campaigns: arms.campaigns_of(k),
                    status: *status,
                    filter: inner,
                    scope: arm_scope,
                })
            });
            push_union_arms(qb, arms, cursor, filter.order, walked);
        }
    }
    qb.push(") as page join conversations c on c.folio = page.folio");
    qb.push(DB::PLAN_ALONE);
    qb.push(") c");
    qb.push(row_joins!());
    qb.push(" where 1 = 1");
}

/// The key column and keys of a page to merge laterally (see
/// [`Backend::LATERAL_MERGE`]), when the backend does and the arms differ
/// by their key alone: campaigns' or channels' ranges, unsplit by status,
/// and disconnected agents' ranges.
///
/// A campaign's Rezagadas arm keeps its own campaign's cutoff, and a status
/// split its status: those stay arms of their own. So does a page whose
/// search is checked along the walk (`walked`): each key's range is read
/// to its own 51 matches, where a merge stops at the page's 51, and at a
/// name one customer in nine has, an Administrador of ten campaigns read
/// ten times the rows (8 ms merged, 24 laterally, at 1,000,000
/// conversations).
///
/// An agent's arm checks every cutoff in view on the rows it walks, so its
/// Rezagadas merges laterally too: a Super Administrador's "Agente
/// desconectado", twenty agents' arms, was planned arm by arm, and of its
/// 864 unsearched views at 1,000,000 conversations (an AMD EPYC machine)
/// 17 took over 20 ms and the slowest 35.9; laterally 3, and 25.9.
fn lateral_key<DB: Backend>(
    arms: &Arms,
    statuses: &[Option<Status>],
    filter: &ListFilter,
    walked: Option<&Search>,
) -> Option<(&'static str, Vec<Uuid>)> {
    if !DB::LATERAL_MERGE || walked.is_some() || statuses != [None] {
        return None;
    }
    let stale = filter.status == Some(StatusFilter::Stale);
    match arms {
        Arms::Campaigns(ids) if !stale => Some(("campaign_id", ids.clone())),
        Arms::Channels(ids) if !stale => Some(("channel_id", ids.clone())),
        // An agent's arm checks the cutoffs on the rows it walks, below
        // the latest (see `push_stale_condition`): every campaign in view
        // can be named once, in the one range planned.
        Arms::Agents(work) => Some(("agent_id", work.iter().map(|(agent, _)| *agent).collect())),
        Arms::Campaigns(_) | Arms::Channels(_) | Arms::Whole => None,
    }
}

/// Appends `(select c.* from (` and the arms' pages merged by `union all`
/// (lazily, or each cut to its page first: see [`Backend::LAZY_MERGE`]),
/// then the merged page's order and limit.
fn push_union_arms<'a, DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    arms: impl Iterator<Item = Arm<'a>>,
    cursor: Option<Cursor>,
    order: ListOrder,
    walked: Option<&Search>,
) {
    let lazy = DB::LAZY_MERGE;
    qb.push(if lazy {
        "(select c.* from ("
    } else {
        "(select c.* from (select * from ("
    });
    for (i, arm) in arms.enumerate() {
        if i > 0 {
            qb.push(" union all ");
        }
        if lazy {
            arm.push(qb, order, walked);
            push_cursor(qb, cursor, order);
        } else {
            qb.push("select * from (");
            arm.push(qb, order, walked);
            push_page(qb, cursor, order);
            qb.push(format!(") as u{i}"));
        }
    }
    if !lazy {
        qb.push(") as merged");
    }
    push_order_limit(qb, cursor, "", order);
}

/// Appends `(select c.* from (` and the page of `arm` for each of `keys`,
/// joined laterally to the list of keys (`arm.column1`, see
/// [`ArmKey::EachOf`]), then the merged page's order and limit: one range
/// planned once, whatever the number of keys (see
/// [`Backend::LATERAL_MERGE`]).
fn push_lateral_arms<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    keys: &[Uuid],
    arm: &Arm,
    cursor: Option<Cursor>,
    order: ListOrder,
    walked: Option<&Search>,
) {
    qb.push("(select c.* from (select x.* from (values ");
    for (i, key) in keys.iter().enumerate() {
        qb.push(if i > 0 { ", (" } else { "(" });
        DB::push_bind(qb, *key);
        qb.push(")");
    }
    qb.push(") as arm cross join lateral (");
    arm.push(qb, order, walked);
    push_page(qb, cursor, order);
    qb.push(") as x");
    push_order_limit(qb, cursor, "", order);
}

/// The agent of a filter that stands for each lateral arm's own, the key
/// `arm.column1` (see [`push_lateral_arms`]): its rows are checked as one
/// agent's are, against the agent of the arm that walks them. Never a real
/// user's id (no version 4 or 7 UUID, which Relevo makes, has every bit set).
const EACH_ARM_AGENT: Uuid = Uuid::max();

/// What an arm of a merged page is the range of.
#[derive(Debug, Clone, Copy)]
enum ArmKey {
    /// The whole scope.
    Whole,
    /// One campaign, channel or agent (`campaign_id`, `channel_id` or
    /// `agent_id`).
    One(&'static str, Uuid),
    /// Each key of a lateral merge's list, `arm.column1` (see
    /// [`push_lateral_arms`]), in the column named.
    EachOf(&'static str),
}

/// One ordered index range of a merged page (see [`push_merged_source`]).
struct Arm<'a> {
    /// What the arm is the range of.
    key: ArmKey,
    /// The campaigns whose Rezagadas cutoffs the arm checks, when not all
    /// of them (see [`Arms::Agents`]).
    campaigns: Option<&'a [Uuid]>,
    /// The status the arm is split to (see [`status_arms`]).
    status: Option<Status>,
    /// The filters, less what the arm's key already says.
    filter: &'a ListFilter,
    /// The scope the arm's rows are checked against.
    scope: &'a Scope,
}

impl Arm<'_> {
    /// Appends the arm's `select` of the page key and its conditions,
    /// without the cursor, order and limit.
    fn push<DB: Backend>(
        &self,
        qb: &mut QueryBuilder<DB>,
        order: ListOrder,
        walked: Option<&Search>,
    ) {
        let mut arm = ListFilter {
            // A campaign's arm keeps its own cutoff (Rezagadas is never
            // merged by channel, see `by_channel_arms`).
            stale_cutoffs: self
                .filter
                .stale_cutoffs
                .iter()
                .filter(|(c, _)| match self.key {
                    ArmKey::One("campaign_id", id) => *c == id,
                    _ => self.campaigns.is_none_or(|ids| ids.contains(c)),
                })
                .copied()
                .collect(),
            ..self.filter.clone()
        };
        qb.push(format_args!(
            "select c.folio, c.{} from conversations c",
            order.column()
        ));
        self.push_key_condition(qb, &mut arm);
        if let Some(status) = self.status {
            match arm.status {
                // Stuck is the campaign's own range: the status is one
                // more condition on it.
                Some(StatusFilter::Stale) => push_status_condition(qb, status),
                // An open status is within "Abiertas" and "Todas".
                _ => arm.status = Some(StatusFilter::Only(status)),
            }
        }
        push_page_conditions(qb, self.scope, &arm);
        if let Some(search) = walked {
            // An arm that also checks its agent's connection (a status's
            // range of "Agente desconectado") keeps `exists`: PostgreSQL
            // then checks the agent before the customer, where a sub-query
            // ran on every row walked (a Super Administrador's "Todas ·
            // Agente desconectado · hasta" searched by name, 12–14 ms with
            // `exists`, 17–18 with the sub-query).
            let by_exists = DB::ARM_SEARCH_BY_EXISTS || arm.agent_offline;
            push_walked_search(qb, search, by_exists);
        }
    }

    /// Appends ` from`'s index where one is named, and ` where …` keeping
    /// the rows of the arm's key; `arm` (the arm's filters) is left with
    /// what the key's condition did not check.
    fn push_key_condition<DB: Backend>(&self, qb: &mut QueryBuilder<DB>, arm: &mut ListFilter) {
        match self.key {
            // One agent's rows, checked as the agent filter checks them:
            // their open work (every status with an agent at work is
            // open), the agent's open range even on "Todas", whose walk
            // of the agent's whole history read the closed rows too.
            ArmKey::One("agent_id", _) | ArmKey::EachOf("agent_id") => {
                arm.agent_id = Some(match self.key {
                    ArmKey::One(_, id) => id,
                    _ => EACH_ARM_AGENT,
                });
                if arm.status == Some(StatusFilter::All) {
                    arm.status = Some(StatusFilter::Open);
                }
                push_agent_index::<DB>(qb, arm, false);
                qb.push(" where 1 = 1");
                // The arm's agent is one of the disconnected agents with
                // work that the view's source has just read (see
                // `Store::offline_work`): their statuses are checked, not
                // their connection again. A look-up of the disconnected
                // agents in every arm was a semi-join for PostgreSQL to
                // plan and run twenty times over: a Super Administrador's
                // "Rezagadas · Agente desconectado" planned in 10.7 ms and
                // ran in 6.0, without it 8.5 and 3.6.
                if arm.agent_offline {
                    arm.agent_offline = false;
                    push_at_work_condition(qb, DB::NOT_AN_INDEX);
                }
            }
            ArmKey::One(column, id) => {
                qb.push(format_args!(" where c.{column} = "));
                DB::push_bind(qb, id);
            }
            ArmKey::EachOf(column) => {
                qb.push(format_args!(" where c.{column} = arm.column1"));
            }
            ArmKey::Whole => {
                qb.push(" where 1 = 1");
            }
        }
    }
}

/// The most ranges a page is merged from (campaigns, channels or agents;
/// see [`Arms`]). SQLite refuses a compound statement of more than 500
/// `select`s (`SQLITE_MAX_COMPOUND_SELECT`): an Administrador of 510
/// campaigns, or a Super Administrador's Rezagadas tab with as many, got an
/// error for every view.
const MAX_MERGED_ARMS: usize = 400;

/// The most arms a page's ranges are split into by status (see
/// [`status_arms`]): an Administrador of a hundred campaigns.
const MAX_SPLIT_ARMS: usize = 200;

/// The most disconnected agents with work a page is merged from (see
/// [`Arms::Agents`]); beyond, it walks the campaigns' or statuses' ranges.
const MAX_AGENT_ARMS: usize = 200;

/// The statuses each arm of a merged page is split into: one range per
/// status of "Agente desconectado" (Asignada and En Proceso, or the one
/// its tab asks for), walked in order and checked for a disconnected
/// agent, so a page costs about 51 entries per status for each share of
/// the work the disconnected agents hold. Before, their open work was
/// found through the status index and sorted whole (20,000 conversations,
/// 65 to 200 ms at 1,000,000). `[None]` otherwise: no split.
fn status_arms(filter: &ListFilter) -> Vec<Option<Status>> {
    if !filter.agent_offline {
        return vec![None];
    }
    WITH_AN_AGENT_AT_WORK
        .iter()
        .filter(|s| match filter.status {
            Some(StatusFilter::Only(tab)) => tab == **s,
            _ => true,
        })
        .map(|s| Some(*s))
        .collect()
}

/// Appends the conversations a search matches, as a `union all` of index
/// lookups that cannot overlap: the folio; and the conversations of the
/// contacts whose phone starts with one of [`phone_prefixes`] (disjoint
/// ranges: the second is the first with a country code the first does not
/// start with; a conversation has one contact), less that folio. Nothing
/// is compared to drop duplicates (the `union` of whole rows sized a hash
/// table for thousands on PostgreSQL and a temporary b-tree on SQLite, for
/// each search). Joining rows back to matched folios would compare less
/// still, but PostgreSQL's generic plan for that join hashes the whole
/// conversations table (search p99 4 s).
fn push_search_source<DB: Backend>(qb: &mut QueryBuilder<DB>, search: &Search) {
    match search {
        Search::Number(digits) => {
            let mut arms = 0;
            let folio = digits.parse::<i64>().ok();
            if let Some(folio) = folio {
                qb.push("select * from conversations where folio = ");
                DB::push_bind(qb, folio);
                arms += 1;
            }
            for prefix in phone_prefixes(digits) {
                if arms > 0 {
                    qb.push(" union all ");
                }
                qb.push(
                    "select * from conversations where contact_id in \
                     (select id from contacts where external_id >= ",
                );
                let end = prefix_end(&prefix);
                DB::push_bind(qb, prefix);
                if let Some(end) = end {
                    qb.push(" and external_id < ");
                    DB::push_bind(qb, end);
                }
                qb.push(")");
                if let Some(folio) = folio {
                    qb.push(" and folio <> ");
                    DB::push_bind(qb, folio);
                }
                arms += 1;
            }
            if arms == 0 {
                qb.push("select * from conversations where 1 = 0");
            }
        }
        Search::Text(text) => {
            qb.push("select * from conversations where contact_id in (");
            DB::push_contacts_matching(qb, text);
            qb.push(")");
        }
    }
}

/// Name of the common table holding a search's matches (see
/// [`push_search_matches`]).
const SEARCH_MATCHES: &str = "search_matches";

/// Starts a statement that shows a search with `with search_matches as
/// materialized (…)`: the matches are looked up once per statement, and
/// the page and the counts of a view both read them from there (they
/// were looked up twice, once for each). Pushes nothing without a search.
/// [`push_list_query`] and [`push_count_query`] expect it.
fn push_search_matches<DB: Backend>(qb: &mut QueryBuilder<DB>, filter: &ListFilter) {
    if let Some(search) = &filter.search {
        qb.push("with ");
        qb.push(SEARCH_MATCHES);
        qb.push(" as materialized (");
        push_search_source(qb, search);
        qb.push(") ");
    }
}

/// The list page is fetched as one row holding a JSON array of its rows (as
/// objects named by [`row_columns!`]) rather than as 51 rows of 22 columns: sqlx hands
/// every result row from the database's thread to the async side on its own,
/// and those hand-offs, not the query, were most of a page's cost (see
/// BENCHMARKS.md). The wrapped query is the same one, with the same plan.
const SQLITE_PAGE_HEAD: &str = "select json_group_array(json_object('id', hex(q.id), \
    'folio', q.folio, 'campaign_id', hex(q.campaign_id), 'channel_id', hex(q.channel_id), \
    'contact_id', hex(q.contact_id), 'status', q.status, 'version', q.version, \
    'agent_id', nullif(hex(q.agent_id), ''), 'agent_name', q.agent_name, \
    'agent_connected', case when q.agent_connected then json('true') else json('false') end, \
    'contact_name', q.contact_name, 'contact_external_id', q.contact_external_id, \
    'channel_kind', q.channel_kind, 'channel_name', q.channel_name, \
    'campaign_name', q.campaign_name, 'started_at', q.started_at, \
    'last_activity_at', q.last_activity_at, 'status_since', q.status_since, \
    'stale_after_minutes', q.stale_after_minutes, 'closed_at', q.closed_at, \
    'closer_name', q.closer_name, 'category_name', q.category_name, \
    'subcategory_name', q.subcategory_name, 'closure_comment', q.closure_comment, \
    'reactivates_folio', q.reactivates_folio)) from (";

/// [`SQLITE_PAGE_HEAD`] for PostgreSQL.
const POSTGRES_PAGE_HEAD: &str = "select coalesce(json_agg(json_build_object('id', q.id, \
    'folio', q.folio, 'campaign_id', q.campaign_id, 'channel_id', q.channel_id, \
    'contact_id', q.contact_id, 'status', q.status, 'version', q.version, \
    'agent_id', q.agent_id, 'agent_name', q.agent_name, \
    'agent_connected', q.agent_connected, 'contact_name', q.contact_name, \
    'contact_external_id', q.contact_external_id, 'channel_kind', q.channel_kind, \
    'channel_name', q.channel_name, 'campaign_name', q.campaign_name, \
    'started_at', q.started_at, 'last_activity_at', q.last_activity_at, \
    'status_since', q.status_since, 'stale_after_minutes', q.stale_after_minutes, \
    'closed_at', q.closed_at, 'closer_name', q.closer_name, \
    'category_name', q.category_name, 'subcategory_name', q.subcategory_name, \
    'closure_comment', q.closure_comment, 'reactivates_folio', q.reactivates_folio)), \
    '[]')::text from (";

/// The status counts as one JSON array of `{status, n, capped}` objects.
const SQLITE_COUNTS_HEAD: &str =
    "select json_group_array(json_object('status', k.status, 'n', k.n, 'capped', k.capped)) from (";

/// [`SQLITE_COUNTS_HEAD`] for PostgreSQL.
const POSTGRES_COUNTS_HEAD: &str = "select coalesce(json_agg(json_build_object('status', k.status, \
    'n', k.n, 'capped', k.capped)), '[]')::text from (";

/// The folio of the conversation that restarted conversation `$1` (served
/// by `conversations_reactivates_id_idx`, see `tests/query_plans.rs`).
pub const RESTARTED_AS: &str = "select min(folio) from conversations where reactivates_id = $1";

/// One element of the aggregated page, by column name (the names of
/// [`row_columns!`]). Ids come as text (hex on SQLite), instants as RFC 3339.
#[derive(serde::Deserialize)]
struct PageRowJson {
    id: String,
    folio: i64,
    campaign_id: String,
    channel_id: String,
    contact_id: String,
    status: String,
    version: i64,
    agent_id: Option<String>,
    agent_name: Option<String>,
    agent_connected: bool,
    contact_name: Option<String>,
    contact_external_id: String,
    channel_kind: String,
    channel_name: String,
    campaign_name: String,
    started_at: String,
    last_activity_at: String,
    status_since: String,
    stale_after_minutes: i64,
    closed_at: Option<String>,
    closer_name: Option<String>,
    category_name: Option<String>,
    subcategory_name: Option<String>,
    closure_comment: Option<String>,
    reactivates_folio: Option<i64>,
}

fn decode_error(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("list page: invalid {what} {value:?}").into())
}

fn json_uuid(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::try_parse(text).map_err(|_| decode_error("id", text))
}

fn json_ts(text: &str) -> Result<Ts, sqlx::Error> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| Ts::new(at.to_utc()))
        .map_err(|_| decode_error("instant", text))
}

impl TryFrom<PageRowJson> for ConversationRow {
    type Error = sqlx::Error;

    fn try_from(r: PageRowJson) -> Result<Self, sqlx::Error> {
        Ok(ConversationRow {
            id: json_uuid(&r.id)?,
            folio: r.folio,
            campaign_id: json_uuid(&r.campaign_id)?,
            channel_id: json_uuid(&r.channel_id)?,
            contact_id: json_uuid(&r.contact_id)?,
            status: Status::try_from(r.status.clone())
                .map_err(|_| decode_error("status", &r.status))?,
            version: r.version,
            agent_id: r.agent_id.as_deref().map(json_uuid).transpose()?,
            agent_name: r.agent_name,
            agent_connected: r.agent_connected,
            contact_name: r.contact_name,
            contact_external_id: r.contact_external_id,
            channel_kind: ChannelKind::try_from(r.channel_kind.clone())
                .map_err(|_| decode_error("channel kind", &r.channel_kind))?,
            channel_name: r.channel_name,
            campaign_name: r.campaign_name,
            started_at: json_ts(&r.started_at)?,
            last_activity_at: json_ts(&r.last_activity_at)?,
            status_since: json_ts(&r.status_since)?,
            stale_after_minutes: r.stale_after_minutes,
            closed_at: r.closed_at.as_deref().map(json_ts).transpose()?,
            closer_name: r.closer_name,
            category_name: r.category_name,
            subcategory_name: r.subcategory_name,
            closure_comment: r.closure_comment,
            reactivates_folio: r.reactivates_folio,
        })
    }
}

/// Decodes an aggregated page and puts it in page order (the aggregate's
/// input order is the subquery's in practice, but neither database promises
/// it, so the order is not taken on trust).
fn decode_page(
    json: &str,
    cursor: Option<Cursor>,
    order: ListOrder,
) -> Result<Vec<ConversationRow>, sqlx::Error> {
    let raw: Vec<PageRowJson> =
        serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let mut rows = raw
        .into_iter()
        .map(ConversationRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_unstable_by_key(|r| (order.key(r), r.folio));
    if order.descending() != matches!(cursor, Some(Cursor::Before(..))) {
        // Descending, or fetched from the cursor outwards before it (the
        // 51 rows just above the cursor).
        rows.reverse();
    }
    Ok(rows)
}

/// Appends the status counts of the scope and filters (status aside):
/// rows of `(status, n)`, and whether each `n` is capped. When the filters
/// are only a campaign, a channel and an agent, totals kept by triggers
/// answer exactly and at once (see [`ListFilter::totals_table`]).
/// Otherwise each status is counted up to [`COUNT_CAP`] (one bounded index
/// range per status; see the constant). A statement with a search starts
/// with [`push_search_matches`].
fn push_count_query<DB: Backend>(qb: &mut QueryBuilder<DB>, scope: &Scope, filter: &ListFilter) {
    if let Some(totals) = filter.totals_table() {
        qb.push(format_args!(
            "select c.status, cast(sum(c.total) as bigint) as n, 0 as capped \
             from {totals} c where 1 = 1"
        ));
        push_conditions(qb, scope, filter, false);
        qb.push(" group by c.status");
        return;
    }
    let counted = Status::ALL.iter().filter(|s| filter.may_hold(**s));
    for (i, status) in counted.enumerate() {
        if i > 0 {
            qb.push(" union all ");
        }
        // A fixed word of the code, so a literal: a bind's type in a union
        // is PostgreSQL's guess.
        qb.push(format_args!("select '{}' as status, (", status.as_str()));
        let one_status = ListFilter {
            status: Some(StatusFilter::Only(*status)),
            ..filter.clone()
        };
        push_capped_count(qb, scope, &one_status);
        qb.push(") as n, 1 as capped");
    }
}

/// Appends `select count(*) from (select 1 … limit COUNT_CAP + 1)` of the
/// conversations of the scope matching `filter`, status included: a count
/// that stops reading at the cap (see [`TabCount::from_capped`]). A search
/// reads the statement's `search_matches` (PostgreSQL cannot use an index
/// for the search's `or` of sub-queries).
fn push_capped_count<DB: Backend>(qb: &mut QueryBuilder<DB>, scope: &Scope, filter: &ListFilter) {
    qb.push("select count(*) from (select 1 from ");
    if filter.search.is_some() {
        qb.push(SEARCH_MATCHES);
        qb.push(" c where 1 = 1");
        let rest = ListFilter {
            search: None,
            ..filter.clone()
        };
        push_conditions(qb, scope, &rest, true);
    } else {
        qb.push("conversations c");
        if filter.agent_id.is_some() {
            push_agent_index::<DB>(qb, filter, true);
        }
        qb.push(" where 1 = 1");
        push_conditions(qb, scope, filter, true);
    }
    if let Some(StatusFilter::Only(status)) = filter.status
        && filter.agent_id.is_none()
        && filter.agent_offline
    {
        // Said twice, as the value it follows from, as the conditions of
        // one agent's rows already say it: the disconnected agents' counts
        // then narrow to their open or closed ones. Only there: elsewhere
        // PostgreSQL took `is_open` for one more index to intersect, and
        // read the 100,000 open conversations' entries for each status of
        // a dated view (6 ms a status at 1,000,000 conversations).
        qb.push(" and c.is_open = ");
        DB::push_bool(qb, status.is_open());
    }
    qb.push(" limit ");
    qb.push(COUNT_CAP + 1);
    qb.push(") counted");
}

/// Whether the scope and filters have a Rezagadas count to take: a
/// campaign with a cutoff in view.
fn counts_stuck(scope: &Scope, filter: &ListFilter) -> bool {
    !filter.stale_cutoffs.is_empty() && !matches!(scope, Scope::Campaigns(ids) if ids.is_empty())
}

/// Appends the Rezagadas count of the scope and filters (status aside),
/// up to [`COUNT_CAP`]: the conversations stuck under
/// `filter.stale_cutoffs`. A statement with a search starts with
/// [`push_search_matches`].
fn push_stuck_count_query<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    filter: &ListFilter,
) {
    let stale = ListFilter {
        status: Some(StatusFilter::Stale),
        ..filter.clone()
    };
    push_capped_count(qb, scope, &stale);
}

/// One aggregated status count, by name.
#[derive(serde::Deserialize)]
struct CountJson {
    status: String,
    n: i64,
    capped: i64,
}

/// Decodes aggregated `{status, n, capped}` counts.
fn decode_counts(json: &str) -> Result<Vec<(Status, TabCount)>, sqlx::Error> {
    let counts: Vec<CountJson> =
        serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(counts
        .into_iter()
        .filter_map(|c| Status::parse(&c.status).map(|s| (s, tab_count(c.n, c.capped != 0))))
        .collect())
}

/// A count as read: capped with `limit`, or exact from the totals.
fn tab_count(n: i64, capped: bool) -> TabCount {
    if capped {
        TabCount::from_capped(n)
    } else {
        TabCount::exact(n)
    }
}

/// A backend's aggregate heads for a Mensajes view's statement.
struct Heads {
    page: &'static str,
    counts: &'static str,
    /// A null of the aggregates' type, for a part not wanted.
    null: &'static str,
}

const SQLITE_HEADS: Heads = Heads {
    page: SQLITE_PAGE_HEAD,
    counts: SQLITE_COUNTS_HEAD,
    null: "null",
};

const POSTGRES_HEADS: Heads = Heads {
    page: POSTGRES_PAGE_HEAD,
    counts: POSTGRES_COUNTS_HEAD,
    null: "null::text",
};

/// The part of a view's statement whose plan is asked for.
#[derive(Clone, Copy)]
enum Explained {
    Page,
    Counts,
}

/// What a Mensajes view shows, as one statement answering one row: (page
/// JSON, counts JSON), null where not wanted. Built the same way for both
/// backends, with their own aggregate heads.
struct View<'a> {
    heads: &'a Heads,
    scope: &'a Scope,
    /// The filters as the statement applies them: without the search when
    /// it is walked.
    filter: ListFilter,
    /// A broad search, checked row by row along the walk (see
    /// [`BROAD_SEARCH_CONTACTS`]); its tabs are not counted.
    walked: Option<&'a Search>,
    cursor: Option<Cursor>,
    /// The ranges a page is merged from when the view's source chose them
    /// (see [`Store::view_source`]).
    arms: Option<&'a Arms>,
}

impl<'a> View<'a> {
    fn new(
        heads: &'a Heads,
        scope: &'a Scope,
        filter: &'a ListFilter,
        broad_search: bool,
        cursor: Option<Cursor>,
        arms: Option<&'a Arms>,
    ) -> View<'a> {
        let walked = filter.search.as_ref().filter(|_| broad_search);
        View {
            heads,
            scope,
            filter: ListFilter {
                search: if walked.is_some() {
                    None
                } else {
                    filter.search.clone()
                },
                ..filter.clone()
            },
            walked,
            cursor,
            arms,
        }
    }

    /// Appends the part of the statement a plan is asked for.
    fn push_part<DB: Backend>(&self, qb: &mut QueryBuilder<DB>, part: Explained) {
        match part {
            Explained::Page => {
                push_search_matches(qb, &self.filter);
                qb.push(self.heads.page);
                self.push_list_query(qb);
                qb.push(") q");
            }
            Explained::Counts => self.push(qb, true, true),
        }
    }

    /// Appends the statement; `no_rows` leaves the page null, and without
    /// `with_counts` the counts are null and the Rezagadas count 0.
    fn push<DB: Backend>(&self, qb: &mut QueryBuilder<DB>, no_rows: bool, with_counts: bool) {
        push_search_matches(qb, &self.filter);
        qb.push("select ");
        if no_rows {
            qb.push(self.heads.null);
        } else {
            qb.push("(");
            qb.push(self.heads.page);
            self.push_list_query(qb);
            qb.push(") q)");
        }
        // A walked search's tabs are not counted.
        let with_counts = with_counts && self.walked.is_none();
        qb.push(", ");
        if with_counts {
            qb.push("(");
            qb.push(self.heads.counts);
            push_count_query(qb, self.scope, &self.filter);
            qb.push(") k)");
        } else {
            qb.push(self.heads.null);
        }
        // The Rezagadas count in the same statement: one read connection
        // and one round trip per view, where it took a second of each.
        qb.push(", ");
        if with_counts && counts_stuck(self.scope, &self.filter) {
            qb.push("(");
            push_stuck_count_query(qb, self.scope, &self.filter);
            qb.push(")");
        } else {
            qb.push("cast(0 as bigint)");
        }
    }

    /// The PostgreSQL connections the view's statement (its page and
    /// counts) runs on: those planned for walks (see `PgStore::walks`),
    /// but for a name search whose customers are found through the trigram
    /// index, which only a bitmap scan reads (a broad one is walked, see
    /// [`Self::walked`]), and a number search, whose plan does not depend
    /// on the number and is kept (see `PgStore::lookups`).
    fn pool<'p>(&self, pg: &'p super::PgStore) -> &'p sqlx::PgPool {
        match self.filter.search {
            Some(Search::Text(_)) => &pg.pool,
            Some(Search::Number(_)) => &pg.lookups,
            None => &pg.walks,
        }
    }

    fn push_list_query<DB: Backend>(&self, qb: &mut QueryBuilder<DB>) {
        push_list_query(
            qb,
            self.scope,
            &self.filter,
            self.cursor,
            self.arms,
            self.walked,
        );
    }
}

impl super::Store {
    /// The database's plan for the list query with these filters, one line
    /// per step (`EXPLAIN QUERY PLAN` on SQLite; `EXPLAIN` with sequential
    /// scans discouraged on PostgreSQL, so a small table still shows whether
    /// an index *can* serve the query). For tests that keep indexes honest.
    pub async fn explain_list(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        cursor: Option<Cursor>,
    ) -> StoreResult<Vec<String>> {
        let source = self.view_source(scope, filter).await?;
        if source.no_rows {
            // As served: no page to read.
            return Ok(vec!["no rows can match: no page statement".to_owned()]);
        }
        let arms = source.arms.as_ref();
        self.explain_view(scope, &source.filter, cursor, arms, Explained::Page)
            .await
    }

    /// The database's plan for a view's counts (its status tabs and its
    /// Rezagadas count), as [`Self::explain_list`] for its page.
    pub async fn explain_counts(
        &self,
        scope: &Scope,
        filter: &ListFilter,
    ) -> StoreResult<Vec<String>> {
        let source = self.view_source(scope, filter).await?;
        if source.nothing {
            // As served: nothing to count.
            return Ok(vec!["no rows can match: no statement".to_owned()]);
        }
        self.explain_view(scope, &source.filter, None, None, Explained::Counts)
            .await
    }

    /// How PostgreSQL planned the statements run on the number searches'
    /// connections (see `PgStore::lookups`), summed over every open one:
    /// runs on a kept, generic plan and runs planned for their values
    /// (`pg_prepared_statements`); None on SQLite. For the test that keeps
    /// those views planned once.
    pub async fn number_search_plans(&self) -> StoreResult<Option<(i64, i64)>> {
        let super::Store::Postgres(pg) = self else {
            return Ok(None);
        };
        // A connection a search just let go goes back to the pool through
        // a task of its own: until it is idle, `acquire` would open a new
        // connection (with no plans) in its place, and its plans would
        // not be counted. Wait, bounded, until every open one is idle.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pg.lookups.num_idle() < pg.lookups.size() as usize
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Each open connection held in turn, so every one is asked once
        // (this statement's own runs left out).
        let mut held = Vec::new();
        let (mut generic, mut custom) = (0, 0);
        for _ in 0..pg.lookups.size() {
            let mut conn = pg.lookups.acquire().await?;
            let (g, c): (i64, i64) = sqlx::query_as(
                "select coalesce(sum(generic_plans), 0)::bigint, \
                 coalesce(sum(custom_plans), 0)::bigint from pg_prepared_statements \
                 where statement not like '%pg_prepared_statements%'",
            )
            .fetch_one(&mut *conn)
            .await?;
            (generic, custom) = (generic + g, custom + c);
            held.push(conn);
        }
        Ok(Some((generic, custom)))
    }

    async fn explain_view(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        cursor: Option<Cursor>,
        arms: Option<&Arms>,
        part: Explained,
    ) -> StoreResult<Vec<String>> {
        let broad = self.broad_search(filter).await?;
        match self {
            super::Store::Sqlite(pools) => {
                let mut qb = sqlx::QueryBuilder::new("explain query plan ");
                let view = View::new(&SQLITE_HEADS, scope, filter, broad, cursor, arms);
                view.push_part(&mut qb, part);
                let rows: Vec<(i64, i64, i64, String)> =
                    qb.build_query_as().fetch_all(&pools.read).await?;
                // Indent each step under its parent, as the sqlite3 shell does.
                let mut depth: std::collections::HashMap<i64, usize> = Default::default();
                Ok(rows
                    .into_iter()
                    .map(|(id, parent, _, detail)| {
                        let d = depth.get(&parent).map_or(0, |p| p + 1);
                        depth.insert(id, d);
                        format!("{}{detail}", "  ".repeat(d))
                    })
                    .collect())
            }
            super::Store::Postgres(pg) => {
                let view = View::new(&POSTGRES_HEADS, scope, filter, broad, cursor, arms);
                // Planned on the connections the view is served from.
                let mut conn = view.pool(pg).acquire().await?;
                // A test data set is small enough that scanning or sorting
                // everything is the planner's cheapest choice; with both
                // disabled it shows the plan a large table gets, and a scan
                // or a sort left in it is one no index could replace.
                for setting in ["set enable_seqscan = off", "set enable_sort = off"] {
                    sqlx::query(setting).execute(&mut *conn).await?;
                }
                let mut qb = sqlx::QueryBuilder::new("explain ");
                view.push_part(&mut qb, part);
                let lines: Result<Vec<String>, _> =
                    qb.build_query_scalar().fetch_all(&mut *conn).await;
                for setting in ["reset enable_seqscan", "reset enable_sort"] {
                    sqlx::query(setting).execute(&mut *conn).await?;
                }
                Ok(lines?)
            }
        }
    }

    /// One page of the scoped, filtered list, newest activity first.
    pub async fn list_conversations(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        cursor: Option<Cursor>,
    ) -> StoreResult<ListPage> {
        Ok(self.list_page(scope, filter, cursor, false).await?.page)
    }

    /// The channels of the filter's kind in the scope and the chosen
    /// campaign, each with its campaign, in a stable order; None without a
    /// kind. A small read of `channels_campaign_idx` (or of the few
    /// channels there are), before the view's statement.
    async fn channels_of_kind(
        &self,
        scope: &Scope,
        filter: &ListFilter,
    ) -> StoreResult<Option<Vec<(Uuid, Uuid)>>> {
        let Some(kind) = filter.channel_kind else {
            return Ok(None);
        };
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Some(Vec::new()));
        }
        let channels = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(
                "select h.id, h.campaign_id from channels h where h.kind = ",
            );
            qb.push_bind(kind.as_str());
            push_campaigns_in_view(&mut qb, "h", scope, filter);
            qb.push(" order by h.id");
            qb.build_query_as::<(Uuid, Uuid)>().fetch_all(pool).await?
        });
        Ok(Some(channels))
    }

    /// The disconnected agents with an Asignada or En Proceso conversation
    /// in view, each with such a campaign, from the totals kept by agent
    /// (one index range per disconnected agent; the scope and the chosen
    /// campaign, when there is one, narrow it). `None` when the view is not
    /// "Agente desconectado".
    async fn offline_work(
        &self,
        scope: &Scope,
        filter: &ListFilter,
    ) -> StoreResult<Option<Vec<(Uuid, Uuid)>>> {
        if !filter.agent_offline {
            return Ok(None);
        }
        let pairs = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(
                "select distinct t.agent_id, t.campaign_id from agent_conversation_counts t \
                 where t.total > 0 and t.status in (",
            );
            let mut list = qb.separated(", ");
            for status in WITH_AN_AGENT_AT_WORK {
                list.push_bind(status.as_str());
            }
            qb.push(
                ") and t.agent_id in (select id from users where role = 'agent' and connected = ",
            );
            qb.push_bind(false);
            qb.push(")");
            push_campaigns_in_view(&mut qb, "t", scope, filter);
            qb.push(" order by t.agent_id, t.campaign_id");
            qb.build_query_as::<(Uuid, Uuid)>().fetch_all(pool).await?
        });
        Ok(Some(pairs))
    }

    /// What a view's statement is built from: the filters, less the
    /// Rezagadas cutoffs of the campaigns where nothing can match (those
    /// without a channel of the kind asked for: each one's stuck range was
    /// walked for nothing, a Super Administrador's Rezagadas by Telegram, a
    /// kind no campaign had, walked all 50 at 1,000,000 conversations; and
    /// for "Agente desconectado", those where no disconnected agent has
    /// work); the ranges the page is merged from, when the source decides
    /// them (the channels of a kind, or the disconnected agents with work,
    /// see [`Arms::Agents`]); and whether any row can match.
    async fn view_source<'f>(
        &self,
        scope: &Scope,
        filter: &'f ListFilter,
    ) -> StoreResult<Source<'f>> {
        let cutoffs_asked = filter.stale_cutoffs.len();
        let mut filter = Cow::Borrowed(filter);
        let mut agents = None;
        if let Some(work) = self.offline_work(scope, &filter).await? {
            filter = keep_cutoffs(filter, |campaign| work.iter().any(|(_, c)| c == campaign));
            // The pairs come sorted by agent: one entry per agent.
            let mut by_agent: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
            for (agent, campaign) in work {
                match by_agent.last_mut() {
                    Some((last, campaigns)) if *last == agent => campaigns.push(campaign),
                    _ => by_agent.push((agent, vec![campaign])),
                }
            }
            agents = Some(by_agent);
        }
        let channels = self.channels_of_kind(scope, &filter).await?;
        if let Some(channels) = &channels {
            filter = keep_cutoffs(filter, |campaign| {
                channels.iter().any(|(_, c)| c == campaign)
            });
        }
        let nothing = matches_nothing(scope, &filter, channels.as_deref());
        let no_work = agents.as_ref().is_some_and(Vec::is_empty);
        let by_agents = agents
            .as_ref()
            .is_some_and(|agents| merges_by_agent(scope, &filter, agents));
        // A narrow search finds its own rows (see `push_list_query`); a
        // broad one is checked along each agent's range, or along the one
        // walk of the stuck rows, as along any walk
        // (a name one customer in eighteen has, with a date range: 34 ms
        // through the campaigns' ranges, which read every connected
        // agent's stuck rows above theirs). Whether it is broad is asked
        // only here, where it decides the source.
        let one_walk =
            one_walk_for_stuck(scope, &filter, filter.stale_cutoffs.len() == cutoffs_asked);
        let broad_search = match &filter.search {
            Some(Search::Text(_)) if (by_agents || one_walk) && !nothing => {
                Some(self.broad_search(&filter).await?)
            }
            _ => None,
        };
        let walks = filter.search.is_none() || broad_search == Some(true);
        let arms = match (channels, agents) {
            (Some(channels), _) if by_channel_arms(&filter) => {
                Some(Arms::Channels(channels.iter().map(|(id, _)| *id).collect()))
            }
            (_, Some(agents)) if by_agents && walks => Some(Arms::Agents(agents)),
            _ if one_walk && walks => Some(Arms::Whole),
            _ => None,
        };
        Ok(Source {
            nothing,
            no_rows: nothing || no_work || page_holds_nothing(scope, &filter),
            arms,
            broad_search,
            filter,
        })
    }

    /// One page of the list, the status counts of the same scope and
    /// filters (status aside) and their Rezagadas count, all in one
    /// statement: what a Mensajes view shows, for one round trip to the
    /// database.
    pub async fn list_with_counts(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        cursor: Option<Cursor>,
    ) -> StoreResult<ViewCounts> {
        self.list_page(scope, filter, cursor, true).await
    }

    async fn list_page(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        cursor: Option<Cursor>,
        with_counts: bool,
    ) -> StoreResult<ViewCounts> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Default::default());
        }
        let source = self.view_source(scope, filter).await?;
        if source.nothing {
            return Ok(Default::default());
        }
        let (filter, arms, no_rows) =
            (source.filter.as_ref(), source.arms.as_ref(), source.no_rows);
        if no_rows && !with_counts {
            return Ok(Default::default());
        }
        let broad = self.walked_search(&source).await?;
        let (page_json, counts_json, stale_count): (Option<String>, Option<String>, i64) =
            match self {
                super::Store::Sqlite(pools) => {
                    let mut qb = sqlx::QueryBuilder::new("");
                    let view = View::new(&SQLITE_HEADS, scope, filter, broad, cursor, arms);
                    view.push(&mut qb, no_rows, with_counts);
                    qb.build_query_as().fetch_one(&pools.read).await?
                }
                super::Store::Postgres(pg) => {
                    let mut qb = sqlx::QueryBuilder::new("");
                    let view = View::new(&POSTGRES_HEADS, scope, filter, broad, cursor, arms);
                    view.push(&mut qb, no_rows, with_counts);
                    qb.build_query_as().fetch_one(view.pool(pg)).await?
                }
            };
        let counts = match counts_json {
            Some(json) => decode_counts(&json)?,
            None => Vec::new(),
        };
        let stale_count = TabCount::from_capped(stale_count);
        let Some(page_json) = page_json else {
            return Ok(ViewCounts {
                page: ListPage::default(),
                counts,
                stale_count,
                broad_search: broad,
            });
        };
        // In fetch order: newest first, or oldest first before a cursor.
        let backwards = matches!(cursor, Some(Cursor::Before(..)));
        let mut rows = decode_page(&page_json, cursor, filter.order)?;
        let more = rows.len() as i64 > PAGE_SIZE;
        rows.truncate(PAGE_SIZE as usize);
        if backwards {
            rows.reverse();
        }
        let page = ListPage {
            rows,
            has_newer: if backwards { more } else { cursor.is_some() },
            has_older: if backwards { true } else { more },
        };
        Ok(ViewCounts {
            page,
            counts,
            stale_count,
            broad_search: broad,
        })
    }

    /// Whether a view's search is broad, checked along the walk: as its
    /// source found out, or asked once now.
    async fn walked_search(&self, source: &Source<'_>) -> StoreResult<bool> {
        match source.broad_search {
            Some(broad) => Ok(broad),
            None => self.broad_search(&source.filter).await,
        }
    }

    /// Whether `filter`'s search is a name search matching more than
    /// [`BROAD_SEARCH_CONTACTS`] customers (one bounded look-up in the
    /// customers' search index; a folio or phone search never is).
    pub async fn broad_search(&self, filter: &ListFilter) -> StoreResult<bool> {
        let Some(Search::Text(text)) = &filter.search else {
            return Ok(false);
        };
        let matched: i64 = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new("select count(*) from (");
            push_contacts_matching_of(&mut qb, text);
            qb.push(" limit ");
            qb.push(BROAD_SEARCH_CONTACTS + 1);
            qb.push(") matched");
            qb.build_query_scalar().fetch_one(pool).await?
        });
        Ok(matched > BROAD_SEARCH_CONTACTS)
    }

    /// Each campaign the scope covers with its `stale_after_minutes`: the
    /// thresholds the Rezagadas cutoffs are computed from. Campaigns are
    /// few; this reads them all.
    pub async fn stale_thresholds(&self, scope: &Scope) -> StoreResult<Vec<(Uuid, i64)>> {
        let thresholds: Vec<(Uuid, i64)> = with_read!(self, |pool| {
            sqlx::query_as("select id, stale_after_minutes from campaigns order by id")
                .fetch_all(pool)
                .await?
        });
        Ok(thresholds
            .into_iter()
            .filter(|(id, _)| match scope {
                Scope::All => true,
                Scope::Campaigns(ids) => ids.contains(id),
            })
            .collect())
    }

    /// The tab counts of the scope and filters (status aside) and their
    /// Rezagadas count, in one statement built as a Mensajes view's (its
    /// page left out): for the live table's `/mensajes/cambios`. None for a
    /// broad search, whose tabs are not counted.
    pub async fn count_tabs(
        &self,
        scope: &Scope,
        filter: &ListFilter,
    ) -> StoreResult<Option<(Vec<(Status, TabCount)>, TabCount)>> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Some((Vec::new(), TabCount::default())));
        }
        let source = self.view_source(scope, filter).await?;
        if self.walked_search(&source).await? {
            return Ok(None);
        }
        if source.nothing {
            return Ok(Some((Vec::new(), TabCount::default())));
        }
        let filter = source.filter.as_ref();
        let (_, counts_json, stale_count): (Option<String>, Option<String>, i64) = match self {
            super::Store::Sqlite(pools) => {
                let mut qb = sqlx::QueryBuilder::new("");
                View::new(&SQLITE_HEADS, scope, filter, false, None, None)
                    .push(&mut qb, true, true);
                qb.build_query_as().fetch_one(&pools.read).await?
            }
            super::Store::Postgres(pg) => {
                let mut qb = sqlx::QueryBuilder::new("");
                View::new(&POSTGRES_HEADS, scope, filter, false, None, None)
                    .push(&mut qb, true, true);
                // On the general connections, not the views' (see
                // `View::pool`): these counts were never among the slow
                // statements, and on the views' connections the live
                // tables' refreshes queued behind the lists (console:
                // their median 126 to 225 ms, 300 to 285 requests/s).
                qb.build_query_as().fetch_one(&pg.pool).await?
            }
        };
        let counts = match counts_json {
            Some(json) => decode_counts(&json)?,
            None => Vec::new(),
        };
        Ok(Some((counts, TabCount::from_capped(stale_count))))
    }

    /// Of the conversations `ids`, those the scope covers that match `filter`
    /// (status included): what a live table re-renders after changes.
    pub async fn rows_matching(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        ids: &[Uuid],
    ) -> StoreResult<Vec<ConversationRow>> {
        if ids.is_empty() || matches!(scope, Scope::Campaigns(c) if c.is_empty()) {
            return Ok(Vec::new());
        }
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(ROW_SELECT);
            qb.push(" where c.id in (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
            push_conditions(&mut qb, scope, filter, true);
            qb.push(" order by c.last_activity_at desc, c.folio desc");
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// One conversation by folio, if the scope covers it.
    pub async fn conversation(
        &self,
        scope: &Scope,
        folio: i64,
    ) -> StoreResult<Option<ConversationRow>> {
        Ok(with_read!(self, |pool| {
            scoped_by_folio!(pool, scope, folio)?
        }))
    }

    /// The conversation `key` names, if the scope covers it, with its
    /// history, its nudges and the `size` messages of its transcript at
    /// `position`: a conversation page's reads, on one connection (see
    /// [`with_read_connection!`]). Read one by one, the console's page
    /// waited for a read connection twice under load and took three at
    /// once, and the API's waited six times.
    pub async fn conversation_reads(
        &self,
        scope: &Scope,
        key: ConversationKey,
        position: TranscriptPosition,
        size: usize,
    ) -> StoreResult<Option<ConversationReads>> {
        let limit = i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1);
        with_read_connection!(self, |conn| {
            let record = match key {
                ConversationKey::Folio(folio) => {
                    sqlx::query(CONVERSATION_BY_FOLIO)
                        .bind(folio)
                        .fetch_optional(&mut *conn)
                        .await?
                }
                ConversationKey::Id(id) => {
                    sqlx::query(CONVERSATION_BY_ID)
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?
                }
            };
            let Some(record) = record else {
                return Ok(None);
            };
            let row = ConversationRow::from_row(&record)?;
            if !scope.allows(row.campaign_id) {
                return Ok(None);
            }
            let closure_ids = ClosureIds::from_row(&record)?;
            let history = sqlx::query_as(HISTORY_SELECT)
                .bind(row.id)
                .fetch_all(&mut *conn)
                .await?;
            // The first restart: only a final conversation restarts, and
            // only once, but nothing in the schema forbids a second.
            let restarted_as = sqlx::query_scalar(RESTARTED_AS)
                .bind(row.id)
                .fetch_one(&mut *conn)
                .await?;
            let nudges = sqlx::query_as(NUDGES_OF)
                .bind(row.id)
                .fetch_all(&mut *conn)
                .await?;
            let mut qb = QueryBuilder::new("");
            push_page_query(&mut qb, row.id, position, limit);
            let messages = qb.build_query_as().fetch_all(&mut *conn).await?;
            Ok(Some(ConversationReads {
                transcript: page_of(messages, position, size),
                row,
                closure_ids,
                history,
                restarted_as,
                nudges,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_national_number_also_matches_with_the_country_code() {
        assert_eq!(phone_prefixes("551234"), vec!["551234", "52551234"]);
        assert_eq!(phone_prefixes("525512"), vec!["525512"]);
        assert!(
            phone_prefixes("55123").is_empty(),
            "too broad to search phones"
        );
    }

    #[test]
    fn a_digit_prefix_range_ends_at_the_next_prefix() {
        assert_eq!(prefix_end("5512").as_deref(), Some("5513"));
        assert_eq!(prefix_end("5599").as_deref(), Some("56"));
        assert_eq!(prefix_end("99"), None);
    }

    /// The agents' open ranges hold all of a disconnected agent's work
    /// only while every status with an agent at work is open.
    #[test]
    fn an_agent_at_work_has_an_open_conversation() {
        assert!(WITH_AN_AGENT_AT_WORK.iter().all(|status| status.is_open()));
    }
}
