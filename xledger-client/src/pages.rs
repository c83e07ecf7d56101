//! Relay pagination as streams of pages: items, items by `dbId_in` chunks, change feeds, the head
//! cursor, and the batched probe of several change feeds in one request.

use std::collections::HashSet;

use futures::future::Either;
use futures::stream::{self as futures_stream, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use xledger_model::page::DeltaPage;
use xledger_model::{ChangeFeed, DbIdKind, EntitySpec, OperationDoc};

use crate::classify::{Failure, classify_response};
use crate::client::XledgerClient;
use crate::error::{ClientError, ErrorKind, RequestContext};
use crate::items::{ItemsPage, pick_field};

/// The operation name of the batched change-feed probe.
pub const PROBE_OPERATION: &str = "ProbeDeltas";

/// Where to read an entity's change feed from: after `after`, or from the oldest change kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    pub entity: &'static EntitySpec,
    pub after: Option<String>,
}

impl FeedPosition {
    pub fn new(entity: &'static EntitySpec, after: Option<String>) -> Self {
        FeedPosition { entity, after }
    }

    /// Where to continue after `page` was read from this position: `Some` when the page says
    /// `hasNextPage` (page on with [`XledgerClient::delta_pages`] from there), `None` when the feed
    /// is exhausted.
    ///
    /// ```
    /// use xledger_client::FeedPosition;
    /// use xledger_model::page::{DeltaPage, PageInfo};
    ///
    /// let timesheets = xledger_model::entity("timesheets").expect("built-in entity");
    /// let position = FeedPosition::new(timesheets, Some("7".to_string()));
    /// let last_page = DeltaPage { edges: vec![], page_info: PageInfo { has_next_page: false } };
    /// assert_eq!(position.continuation(&last_page), None);
    /// ```
    pub fn continuation(&self, page: &DeltaPage) -> Option<FeedPosition> {
        if !page.page_info.has_next_page {
            return None;
        }
        let after = page.edges.last().map(|e| e.cursor.clone()).or_else(|| self.after.clone());
        Some(FeedPosition { entity: self.entity, after })
    }
}

/// What the pagers need to know about a page, whatever its node type.
trait Cursors {
    fn last_cursor(&self) -> Option<&str>;
    fn has_next_page(&self) -> bool;
}

impl Cursors for ItemsPage {
    fn last_cursor(&self) -> Option<&str> {
        ItemsPage::last_cursor(self)
    }
    fn has_next_page(&self) -> bool {
        ItemsPage::has_next_page(self)
    }
}

impl Cursors for DeltaPage {
    fn last_cursor(&self) -> Option<&str> {
        self.edges.last().map(|e| e.cursor.as_str())
    }
    fn has_next_page(&self) -> bool {
        self.page_info.has_next_page
    }
}

/// One pagination run: the operation, its fixed variables and where it stands.
struct Pager {
    operation: OperationDoc,
    /// The operation as errors name it (the by-dbIds pager adds the chunk).
    label: String,
    root_field: &'static str,
    entity: &'static str,
    fixed_variables: Map<String, Value>,
    page_size: usize,
    after: Option<String>,
    /// Every `after` already requested: seeing one again means the server is going round in circles.
    requested: HashSet<Option<String>>,
    page: u64,
    done: bool,
}

impl Pager {
    fn new(
        entity: &'static EntitySpec,
        operation: OperationDoc,
        root_field: &'static str,
        page_size: usize,
        after: Option<String>,
    ) -> Self {
        Pager {
            operation,
            label: operation.name.to_string(),
            root_field,
            entity: entity.name,
            fixed_variables: Map::new(),
            page_size,
            after,
            requested: HashSet::new(),
            page: 0,
            done: false,
        }
    }

    fn context(&self) -> RequestContext {
        RequestContext::entity(self.entity, self.label.clone()).with_page(self.page)
    }
}

/// Validates that `page_size` is within `1..=max`.
fn check_page_size(page_size: usize, max: usize, ctx: &RequestContext) -> Result<(), ClientError> {
    if page_size == 0 || page_size > max {
        return Err(ClientError::new(
            ErrorKind::InvalidArgument,
            ctx.clone(),
            format!("page size {page_size} is outside 1..={max}"),
        )
        .with_attempts(0));
    }
    Ok(())
}

/// Checks that a page lets pagination make progress and returns the next `after`, or `None`
/// when the page was the last.
fn next_after<P: Cursors>(
    page: &P,
    requested: &HashSet<Option<String>>,
    ctx: &RequestContext,
) -> Result<Option<String>, ClientError> {
    if !page.has_next_page() {
        return Ok(None);
    }
    let Some(cursor) = page.last_cursor() else {
        return Err(ClientError::new(
            ErrorKind::EmptyPageWithNextPage,
            ctx.clone(),
            "the page has no edges but says hasNextPage: true",
        ));
    };
    let next = Some(cursor.to_string());
    if requested.contains(&next) {
        return Err(ClientError::new(
            ErrorKind::CursorDidNotAdvance,
            ctx.clone(),
            format!("the page's last cursor {cursor:?} was already requested as `after`"),
        ));
    }
    Ok(next)
}

/// Reads a response's `data` and decodes its root field `field` (a change-feed page).
fn read_root<P: DeserializeOwned>(status: u16, text: &str, field: &str) -> Result<P, Failure> {
    let data = classify_response(status, text)?;
    decode_root(data, field)
}

/// Decodes the root field `field` of a `data` object.
fn decode_root<P: DeserializeOwned>(data: &RawValue, field: &str) -> Result<P, Failure> {
    let malformed = |message: String| Failure::new(ErrorKind::MalformedResponse, message);
    let raw = pick_field(data.get(), field)
        .map_err(|e| malformed(format!("`data` is not an object: {e}")))?
        .ok_or_else(|| malformed(format!("`data` has no field `{field}`")))?;
    if raw.get() == "null" {
        return Err(malformed(format!("`data.{field}` is null")));
    }
    serde_json::from_str(raw.get()).map_err(|e| malformed(format!("`data.{field}` is not a connection page: {e}")))
}

/// Ends a stream after its first error, so one failure is reported once and nothing runs after it.
fn stop_after_error<T, S>(stream: S) -> impl Stream<Item = Result<T, ClientError>>
where
    S: Stream<Item = Result<T, ClientError>>,
{
    stream.scan(false, |failed, item| {
        let next = if *failed {
            None
        } else {
            *failed = item.is_err();
            Some(item)
        };
        futures::future::ready(next)
    })
}

impl XledgerClient {
    /// Requests the pager's next page, each response read by `read`. `None` when the pager is done.
    async fn next_page<P, F>(&self, pager: &mut Pager, read: F) -> Option<Result<P, ClientError>>
    where
        P: Cursors,
        F: FnMut(u16, String) -> Result<P, Failure>,
    {
        if pager.done {
            return None;
        }
        pager.page += 1;
        let ctx = pager.context();
        if let Err(e) = check_page_size(pager.page_size, self.inner.max_page_size, &ctx) {
            pager.done = true;
            return Some(Err(e));
        }
        let mut variables = pager.fixed_variables.clone();
        variables.insert("first".to_string(), json!(pager.page_size));
        if let Some(after) = &pager.after {
            variables.insert("after".to_string(), json!(after));
        }
        pager.requested.insert(pager.after.clone());
        let result = self
            .execute_with(pager.operation.document, Value::Object(variables), ctx.clone(), read)
            .await
            .and_then(|page| Ok((next_after(&page, &pager.requested, &ctx)?, page)));
        match result {
            Ok((next, page)) => {
                pager.done = next.is_none();
                pager.after = next;
                Some(Ok(page))
            }
            Err(e) => {
                pager.done = true;
                Some(Err(e))
            }
        }
    }

    fn item_pages(&self, pager: Pager) -> impl Stream<Item = Result<ItemsPage, ClientError>> + Send + '_ {
        futures_stream::unfold(pager, move |mut pager| async move {
            let root = pager.root_field;
            let page = self.next_page(&mut pager, |status, text| ItemsPage::from_response(status, text, root)).await?;
            Some((page, pager))
        })
    }

    fn feed_pages(&self, pager: Pager) -> impl Stream<Item = Result<DeltaPage, ClientError>> + Send + '_ {
        futures_stream::unfold(pager, move |mut pager| async move {
            let root = pager.root_field;
            let page = self.next_page(&mut pager, |status, text| read_root(status, &text, root)).await?;
            Some((page, pager))
        })
    }

    /// Pages an entity's items oldest first with `first: page_size`, starting after `after`
    /// (`None`: from the start). Each page's last cursor is the next `after`; the stream ends after
    /// the page that says `hasNextPage: false`, or after the first error: a cursor that does not
    /// advance ([`ErrorKind::CursorDidNotAdvance`]) or a page with no edges that claims a next page
    /// ([`ErrorKind::EmptyPageWithNextPage`]) ends it instead of looping.
    ///
    /// Each page is read in one pass and keeps its response body: [`ItemsPage::nodes`] are the
    /// nodes' JSON texts inside it, ready for the lake writer.
    pub fn items_pages(
        &self,
        entity: &'static EntitySpec,
        page_size: usize,
        after: Option<String>,
    ) -> impl Stream<Item = Result<ItemsPage, ClientError>> + Send + '_ {
        self.item_pages(Pager::new(entity, entity.items_page, entity.items_field, page_size, after))
    }

    /// Fetches the current rows of `db_ids` with the entity's by-dbIds operation, `chunk_size` ids
    /// per `dbId_in` filter, paging each chunk until `hasNextPage: false`. Ids travel as JSON
    /// strings for [`DbIdKind::Int64String`] entities and as numbers for [`DbIdKind::Int`] ones.
    /// Errors name the chunk (`TimesheetsByDbIds chunk 2/5`) and the page within it. An empty
    /// `db_ids` yields nothing.
    pub fn items_by_db_ids(
        &self,
        entity: &'static EntitySpec,
        db_ids: Vec<i64>,
        chunk_size: usize,
        page_size: usize,
    ) -> impl Stream<Item = Result<ItemsPage, ClientError>> + Send + '_ {
        let operation = match entity.change_feed.map(|feed| feed.by_db_ids) {
            None => Err(ClientError::new(
                ErrorKind::InvalidArgument,
                RequestContext::entity(entity.name, "by dbIds"),
                "the entity has no by-dbIds operation (its query file defines no change feed)",
            )
            .with_attempts(0)),
            Some(operation) if chunk_size == 0 => Err(ClientError::new(
                ErrorKind::InvalidArgument,
                RequestContext::entity(entity.name, operation.name),
                "chunk size must be at least 1",
            )
            .with_attempts(0)),
            Some(operation) => Ok(operation),
        };
        let operation = match operation {
            Ok(operation) => operation,
            Err(e) => return Either::Left(futures_stream::once(futures::future::ready(Err(e)))),
        };
        let chunks: Vec<Vec<i64>> = db_ids.chunks(chunk_size).map(<[i64]>::to_vec).collect();
        let chunk_count = chunks.len();
        let pages = futures_stream::iter(chunks.into_iter().enumerate()).flat_map(move |(index, chunk)| {
            let ids: Vec<Value> = match entity.db_id_kind {
                DbIdKind::Int64String => chunk.iter().map(|id| Value::String(id.to_string())).collect(),
                DbIdKind::Int => chunk.iter().map(|id| json!(id)).collect(),
            };
            let mut fixed_variables = Map::new();
            fixed_variables.insert("dbIds".to_string(), Value::Array(ids));
            let mut pager = Pager::new(entity, operation, entity.items_field, page_size, None);
            pager.label = format!("{} chunk {}/{chunk_count}", operation.name, index + 1);
            pager.fixed_variables = fixed_variables;
            self.item_pages(pager)
        });
        Either::Right(stop_after_error(pages))
    }

    /// Pages an entity's change feed oldest first after `after` (`None`: from the oldest change
    /// kept). Ends like [`XledgerClient::items_pages`]; a feed with nothing new yields one empty page.
    pub fn delta_pages(
        &self,
        entity: &'static EntitySpec,
        page_size: usize,
        after: Option<String>,
    ) -> impl Stream<Item = Result<DeltaPage, ClientError>> + Send + '_ {
        match entity.change_feed {
            Some(feed) => Either::Left(self.feed_pages(Pager::new(entity, feed.deltas, feed.field, page_size, after))),
            None => Either::Right(futures_stream::once(futures::future::ready(Err(no_change_feed(entity))))),
        }
    }

    /// The cursor of the newest change in the entity's feed (`last: 1`), or `None` when the feed is
    /// empty. A full sync reads it *before* loading items, so changes made during the load are
    /// picked up by the next incremental run.
    pub async fn deltas_head_cursor(&self, entity: &'static EntitySpec) -> Result<Option<String>, ClientError> {
        let Some(ChangeFeed { field, deltas: operation, .. }) = entity.change_feed else {
            return Err(no_change_feed(entity));
        };
        let ctx = RequestContext::entity(entity.name, operation.name);
        let page: DeltaPage = self
            .execute_with(operation.document, json!({ "last": 1 }), ctx, |status, text| read_root(status, &text, field))
            .await?;
        Ok(page.edges.last().map(|edge| edge.cursor.clone()))
    }

    /// Reads one page (`first: page_size`) of several change feeds in ONE request: each feed is an
    /// aliased root field (`f0`, `f1`, …) with its own `after`. Returns the pages in the order of
    /// `feeds`. A page with `hasNextPage: true` came back full: continue that feed alone from
    /// [`FeedPosition::continuation`] with [`XledgerClient::delta_pages`]. No feeds, no request.
    ///
    /// ```no_run
    /// # async fn example(client: xledger_client::XledgerClient) -> Result<(), xledger_client::ClientError> {
    /// use futures::TryStreamExt;
    /// use xledger_client::FeedPosition;
    ///
    /// let feeds: Vec<FeedPosition> = xledger_model::entities()
    ///     .iter()
    ///     .filter(|e| e.has_change_feed())
    ///     .map(|e| FeedPosition::new(e, None))
    ///     .collect();
    /// let pages = client.probe_deltas(&feeds, 1000).await?;
    /// for (feed, page) in feeds.iter().zip(&pages) {
    ///     if let Some(next) = feed.continuation(page) {
    ///         let rest: Vec<_> = client.delta_pages(next.entity, 1000, next.after).try_collect().await?;
    ///         println!("{}: {} more pages", feed.entity.name, rest.len());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn probe_deltas(&self, feeds: &[FeedPosition], page_size: usize) -> Result<Vec<DeltaPage>, ClientError> {
        if feeds.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = feeds.iter().map(|f| f.entity.name).collect();
        let ctx = RequestContext::operation(format!("{PROBE_OPERATION}[{}]", names.join(",")));
        check_page_size(page_size, self.inner.max_page_size, &ctx)?;
        let mut fields = Vec::with_capacity(feeds.len());
        for feed in feeds {
            fields.push(feed.entity.change_feed.map(|feed| feed.field).ok_or_else(|| no_change_feed(feed.entity))?);
        }
        let document = probe_document(&fields);
        let mut variables = Map::new();
        variables.insert("first".to_string(), json!(page_size));
        for (i, feed) in feeds.iter().enumerate() {
            variables.insert(format!("after{i}"), json!(feed.after));
        }
        let data = self.execute_raw(&document, Value::Object(variables), ctx).await?;
        let mut pages = Vec::with_capacity(feeds.len());
        for (i, feed) in feeds.iter().enumerate() {
            let feed_ctx = RequestContext::entity(feed.entity.name, PROBE_OPERATION).with_page(1);
            let page: DeltaPage = decode_root(&data, &format!("f{i}"))
                .map_err(|failure| ClientError::new(failure.kind, feed_ctx.clone(), failure.message))?;
            let requested = HashSet::from([feed.after.clone()]);
            next_after(&page, &requested, &feed_ctx)?;
            pages.push(page);
        }
        Ok(pages)
    }
}

fn no_change_feed(entity: &EntitySpec) -> ClientError {
    ClientError::new(
        ErrorKind::InvalidArgument,
        RequestContext::entity(entity.name, "deltas"),
        "the entity has no change feed",
    )
    .with_attempts(0)
}

/// `query ProbeDeltas($first: Int, $after0: String, …) { f0: timesheet_deltas(first: $first, after: $after0) { … } … }`
fn probe_document(deltas_fields: &[&str]) -> String {
    let mut document = format!("query {PROBE_OPERATION}($first: Int");
    for i in 0..deltas_fields.len() {
        document.push_str(&format!(", $after{i}: String"));
    }
    document.push_str(") {\n");
    for (i, field) in deltas_fields.iter().enumerate() {
        document.push_str(&format!(
            "  f{i}: {field}(first: $first, after: $after{i}) {{ edges {{ cursor node {{ dbId mutationType }} }} pageInfo {{ hasNextPage }} }}\n"
        ));
    }
    document.push('}');
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_document_aliases_each_feed_with_its_own_after() {
        let document = probe_document(&["timesheet_deltas", "project_deltas"]);
        assert!(document.starts_with("query ProbeDeltas($first: Int, $after0: String, $after1: String) {"));
        assert!(document.contains("f0: timesheet_deltas(first: $first, after: $after0)"));
        assert!(document.contains("f1: project_deltas(first: $first, after: $after1)"));
    }
}
