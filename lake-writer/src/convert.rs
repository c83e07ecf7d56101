//! Pages of raw Xledger nodes → Arrow `RecordBatch`es in the entity's lake schema.
//!
//! The conversion streams each node's JSON text once through serde with a plan derived from the
//! entity's [`ColumnSpec`]s (a tree of the selected fields), appending straight into one Arrow
//! builder per column. No intermediate `serde_json::Value`, no per-entity code. This direct path
//! measured faster than `serde_arrow` over flattened records (see `benches/convert.rs`), and it
//! is exact: decimals go through [`xledger_model::decimal::parse_decimal`] (which refuses to cut
//! digits, where `serde_arrow` truncates silently), date-times through
//! [`xledger_model::time::parse_xledger_datetime`] (Central European wall clock → UTC, gaps and
//! overlaps as documented there).
//!
//! Rules, each an error naming entity, dbId, column and value: a selected field missing from a
//! node; a value of another JSON type than the schema declares (never coerced); `null` in a
//! non-null field under a present parent; a decimal with more fractional digits than the scale
//! or more digits than the precision; a malformed date or date-time. A `null` parent object makes
//! all its flattened columns null. Fields the plan does not select are ignored.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, PrimitiveArray,
    PrimitiveBuilder, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{ArrowPrimitiveType, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use xledger_model::page::MutationType;
use xledger_model::{ColumnKind, ColumnSpec, EntitySpec, JsonRepr};

use crate::error::{ConvertError, ConvertReason};

/// The longest value text an error repeats.
const MAX_VALUE_TEXT: usize = 200;

/// Converts pages of one entity's nodes into record batches of its lake schema.
///
/// Reusable: builders keep their capacity between pages. A page either converts completely or
/// fails with a [`ConvertError`] and leaves nothing behind.
///
/// ```
/// use lake_writer::PageConverter;
/// use xledger_model::page::MutationType;
///
/// let customers = xledger_model::entity("customers").unwrap();
/// let mut converter = PageConverter::new(customers);
/// let node = r#"{"dbId": 7, "description": "Acme", "email": null, "code": "A1",
///     "number": 1001, "company": null}"#;
/// let synced_at = chrono::Utc::now();
/// let batch = converter.convert_nodes([(node, MutationType::Added)], synced_at).unwrap();
/// assert_eq!(batch.num_rows(), 1);
/// assert_eq!(batch.num_columns(), customers.columns.len() + 2);
/// ```
pub struct PageConverter {
    entity: &'static EntitySpec,
    schema: SchemaRef,
    plan: PlanObject,
    builders: Vec<ColumnBuilder>,
    mutation_types: StringBuilder,
    db_id_column: Option<usize>,
    seen_db_ids: HashSet<i64>,
    clock: WallClockCache,
}

impl fmt::Debug for PageConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageConverter").field("entity", &self.entity.name).finish_non_exhaustive()
    }
}

impl PageConverter {
    /// A converter for `entity`'s columns and schema.
    pub fn new(entity: &'static EntitySpec) -> Self {
        PageConverter {
            entity,
            schema: Arc::new(entity.arrow_schema()),
            plan: PlanObject::build(entity.columns, 0),
            builders: entity.columns.iter().map(ColumnBuilder::new).collect(),
            mutation_types: StringBuilder::new(),
            db_id_column: entity.columns.iter().position(|c| c.name == "dbId"),
            seen_db_ids: HashSet::new(),
            clock: WallClockCache::default(),
        }
    }

    /// The entity this converter writes.
    pub fn entity(&self) -> &'static EntitySpec {
        self.entity
    }

    /// The Arrow schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Converts ADDED/UPDATED nodes (each a JSON object's text, as the API sent it) into one
    /// batch; `synced_at` fills `_synced_at`.
    pub fn convert_nodes<'n>(
        &mut self,
        nodes: impl IntoIterator<Item = (&'n str, MutationType)>,
        synced_at: DateTime<Utc>,
    ) -> Result<RecordBatch, ConvertError> {
        self.seen_db_ids.clear();
        let mut rows = 0;
        for (node, mutation_type) in nodes {
            if let Err(error) = self.append_node(node, mutation_type).and_then(|()| self.check_unique_db_id(rows, node))
            {
                self.reset();
                return Err(error);
            }
            rows += 1;
        }
        self.finish_batch(rows, synced_at)
    }

    /// Converts deletions into one batch: `dbId`, `mutationType = DELETED`, `_synced_at`; the
    /// other columns are null.
    pub fn convert_deletions(&mut self, db_ids: &[i64], synced_at: DateTime<Utc>) -> Result<RecordBatch, ConvertError> {
        let Some(db_id_column) = self.db_id_column else {
            return Err(self.error(None, "dbId", String::new(), ConvertReason::Missing));
        };
        self.seen_db_ids.clear();
        for &db_id in db_ids {
            if !self.seen_db_ids.insert(db_id) {
                self.reset();
                return Err(self.error(Some(db_id), "dbId", db_id.to_string(), ConvertReason::DuplicateDbId));
            }
            for (index, builder) in self.builders.iter_mut().enumerate() {
                match builder {
                    ColumnBuilder::Int64(b) if index == db_id_column => b.append_value(db_id),
                    other => other.append_null(),
                }
            }
            self.mutation_types.append_value(MutationType::Deleted.as_str());
        }
        self.finish_batch(db_ids.len(), synced_at)
    }

    /// The seed that reads one node into the builders, recording why it failed in `failure`.
    fn node_seed<'a>(&'a mut self, failure: &'a mut Option<Failure>) -> ObjectSeed<'a> {
        ObjectSeed {
            object: &self.plan,
            builders: &mut self.builders,
            columns: self.entity.columns,
            failure,
            clock: &mut self.clock,
            nullable: false,
        }
    }

    fn append_node(&mut self, node: &str, mutation_type: MutationType) -> Result<(), ConvertError> {
        let mut failure = None;
        let mut deserializer = serde_json::Deserializer::from_str(node);
        let outcome = self.node_seed(&mut failure).deserialize(&mut deserializer).and_then(|()| deserializer.end());
        match outcome {
            Ok(()) => {
                self.mutation_types.append_value(mutation_type.as_str());
                Ok(())
            }
            Err(json_error) => {
                let db_id = db_id_of(node);
                Err(match failure {
                    Some(failure) => self.error(db_id, &failure.column, failure.value, failure.reason),
                    None => self.error(db_id, "", shorten(node), ConvertReason::MalformedJson(json_error.to_string())),
                })
            }
        }
    }

    fn check_unique_db_id(&mut self, row: usize, node: &str) -> Result<(), ConvertError> {
        let Some(ColumnBuilder::Int64(builder)) = self.db_id_column.map(|c| &self.builders[c]) else {
            return Ok(());
        };
        // The row was just appended, so `row` indexes it; dbId is non-null by the schema (a null
        // was refused while appending).
        let db_id = builder.values_slice().get(row).copied();
        match db_id {
            Some(db_id) if !self.seen_db_ids.insert(db_id) => {
                Err(self.error(Some(db_id), "dbId", shorten(node), ConvertReason::DuplicateDbId))
            }
            _ => Ok(()),
        }
    }

    fn finish_batch(&mut self, rows: usize, synced_at: DateTime<Utc>) -> Result<RecordBatch, ConvertError> {
        // dbIds are unique per batch: the next one starts afresh.
        self.seen_db_ids.clear();
        let mut arrays: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish_and_reserve).collect();
        arrays.push(Arc::new(finish_strings_and_reserve(&mut self.mutation_types)));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from_value(synced_at.timestamp_micros(), rows).with_timezone("UTC"),
        ));
        // Every builder received exactly one value per row and types come from the same
        // ColumnSpecs as the schema, so this cannot fail short of a bug; report it rather than panic.
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|error| {
            self.error(
                None,
                "",
                String::new(),
                ConvertReason::MalformedJson(format!("internal: batch assembly failed: {error}")),
            )
        })
    }

    /// Drops a failed batch's rows and the dbIds seen in it, so the next batch starts clean.
    fn reset(&mut self) {
        for builder in &mut self.builders {
            builder.finish();
        }
        self.mutation_types.finish();
        self.seen_db_ids.clear();
    }

    fn error(&self, db_id: Option<i64>, column: &str, value: String, reason: ConvertReason) -> ConvertError {
        ConvertError { entity: self.entity.name, db_id, column: column.to_string(), value, reason }
    }
}

/// Reads a node's `dbId` (string or number) for error messages; `None` when it is not readable.
fn db_id_of(node: &str) -> Option<i64> {
    xledger_model::page::node_db_id(node).ok()
}

pub(crate) fn shorten(text: &str) -> String {
    if text.len() <= MAX_VALUE_TEXT {
        return text.to_string();
    }
    let mut end = MAX_VALUE_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A column's Arrow builder.
enum ColumnBuilder {
    Int64(Int64Builder),
    Decimal { builder: Decimal128Builder, precision: u8, scale: i8 },
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
}

impl ColumnBuilder {
    fn new(column: &ColumnSpec) -> Self {
        match column.kind {
            ColumnKind::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            ColumnKind::Decimal { precision, scale } => ColumnBuilder::Decimal {
                // The registry only generates valid (precision, scale) pairs (≤ 38, scale ≤ precision);
                // should one ever be invalid, the batch assembly reports the type mismatch as an error.
                builder: Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal128Builder::new()),
                precision,
                scale,
            },
            ColumnKind::Date => ColumnBuilder::Date(Date32Builder::new()),
            ColumnKind::Timestamp => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            ColumnKind::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            ColumnKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            ColumnKind::Utf8 => ColumnBuilder::Utf8(StringBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Decimal { builder, .. } => builder.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
        }
    }

    /// Finishes the array and leaves the builder with room for as many rows (and string bytes) as
    /// it just held: pages are alike, so the next page appends without growing its buffers
    /// doubling by doubling (copies, and a heap fragmented by buffers of every size).
    fn finish_and_reserve(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int64(b) => Arc::new(finish_primitive_and_reserve(b)),
            ColumnBuilder::Decimal { builder, .. } => Arc::new(finish_primitive_and_reserve(builder)),
            ColumnBuilder::Date(b) => Arc::new(finish_primitive_and_reserve(b)),
            ColumnBuilder::Timestamp(b) => Arc::new(finish_primitive_and_reserve(b)),
            ColumnBuilder::Float64(b) => Arc::new(finish_primitive_and_reserve(b)),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(finish_strings_and_reserve(b)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal { builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
        }
    }
}

/// A little headroom, so a slightly larger next page does not double every buffer.
fn with_headroom(len: usize) -> usize {
    len + len / 8
}

/// [`ColumnBuilder::finish_and_reserve`] for a string builder.
fn finish_strings_and_reserve(builder: &mut StringBuilder) -> arrow::array::StringArray {
    let rows = builder.offsets_slice().len().saturating_sub(1);
    let bytes = builder.values_slice().len();
    let array = builder.finish();
    *builder = StringBuilder::with_capacity(with_headroom(rows), with_headroom(bytes));
    array
}

/// [`ColumnBuilder::finish_and_reserve`] for a primitive builder; the data type (decimal precision
/// and scale, time zone) is kept.
fn finish_primitive_and_reserve<T: ArrowPrimitiveType>(builder: &mut PrimitiveBuilder<T>) -> PrimitiveArray<T> {
    let rows = builder.values_slice().len();
    let array = builder.finish();
    *builder = PrimitiveBuilder::<T>::with_capacity(with_headroom(rows)).with_data_type(array.data_type().clone());
    array
}

/// The selected fields of one JSON object level.
#[derive(Debug)]
struct PlanObject {
    fields: Vec<PlanField>,
}

#[derive(Debug)]
struct PlanField {
    name: &'static str,
    /// The flattened path up to and including this field (`project` or `project.dbId`).
    path: String,
    child: PlanChild,
}

#[derive(Debug)]
enum PlanChild {
    /// A value column: the index into the entity's columns.
    Leaf(usize),
    /// A nested object, with every column index below it (for a `null` object).
    Object { object: PlanObject, leaves: Vec<usize> },
}

impl PlanObject {
    /// The plan for the columns whose paths share the first `depth` names with this object.
    fn build(columns: &'static [ColumnSpec], depth: usize) -> Self {
        Self::build_from(columns.iter().enumerate().collect(), depth)
    }

    /// Fields come in the order of their first column, which is the query's selection order and
    /// so the order Xledger writes them in (the fast path tries the next field first).
    fn build_from(columns: Vec<(usize, &'static ColumnSpec)>, depth: usize) -> Self {
        enum Entry {
            Leaf(PlanField),
            Group(&'static str, Vec<(usize, &'static ColumnSpec)>),
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (index, column) in columns {
            let Some(&name) = column.path.get(depth) else { continue };
            if column.path.len() == depth + 1 {
                entries.push(Entry::Leaf(PlanField {
                    name,
                    path: column.name.to_string(),
                    child: PlanChild::Leaf(index),
                }));
                continue;
            }
            let group = entries.iter_mut().find_map(|entry| match entry {
                Entry::Group(n, group) if *n == name => Some(group),
                _ => None,
            });
            match group {
                Some(group) => group.push((index, column)),
                None => entries.push(Entry::Group(name, vec![(index, column)])),
            }
        }
        let fields = entries
            .into_iter()
            .map(|entry| match entry {
                Entry::Leaf(field) => field,
                Entry::Group(name, group) => {
                    let path = group[0].1.path[..=depth].join(".");
                    let leaves = group.iter().map(|(i, _)| *i).collect();
                    PlanField {
                        name,
                        path,
                        child: PlanChild::Object { object: Self::build_from(group, depth + 1), leaves },
                    }
                }
            })
            .collect();
        PlanObject { fields }
    }
}

/// Why a node failed, recorded by the visitors (serde errors only carry text).
struct Failure {
    column: String,
    value: String,
    reason: ConvertReason,
}

fn fail<E: de::Error>(slot: &mut Option<Failure>, column: &str, value: String, reason: ConvertReason) -> E {
    *slot = Some(Failure { column: column.to_string(), value, reason });
    E::custom("conversion failed")
}

/// Deserializes one object level into the builders.
struct ObjectSeed<'a> {
    object: &'a PlanObject,
    builders: &'a mut [ColumnBuilder],
    columns: &'static [ColumnSpec],
    failure: &'a mut Option<Failure>,
    clock: &'a mut WallClockCache,
    /// False for the node itself; nested objects may be `null`.
    nullable: bool,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(ObjectVisitor { seed: self, path: "" })
    }
}

struct ObjectVisitor<'a> {
    seed: ObjectSeed<'a>,
    /// This object's flattened path, for errors ("" for the node).
    path: &'a str,
}

impl ObjectVisitor<'_> {
    fn wrong_type<E: de::Error>(self, found: &'static str, value: String) -> E {
        fail(self.seed.failure, self.path, value, ConvertReason::WrongJsonType { expected: "object", found })
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ObjectSeed { object, builders, columns, failure, clock, .. } = self.seed;
        let mut seen = Seen::new(object.fields.len());
        while let Some(index) = map.next_key_seed(FieldMatcher(object))? {
            let Some(index) = index else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = &object.fields[index];
            if !seen.insert(index) {
                return Err(fail(failure, &field.path, String::new(), ConvertReason::DuplicateField));
            }
            match &field.child {
                PlanChild::Leaf(column) => {
                    map.next_value_seed(LeafSeed {
                        column: &columns[*column],
                        builder: &mut builders[*column],
                        failure,
                        clock: &mut *clock,
                    })?;
                }
                PlanChild::Object { object: child, leaves } => {
                    map.next_value_seed(NestedSeed {
                        seed: ObjectSeed {
                            object: child,
                            builders,
                            columns,
                            failure,
                            clock: &mut *clock,
                            nullable: true,
                        },
                        path: &field.path,
                        leaves,
                    })?;
                }
            }
        }
        if let Some(missing) = seen.first_missing() {
            return Err(fail(failure, &object.fields[missing].path, String::new(), ConvertReason::Missing));
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.seed.nullable {
            // Unreachable in practice: NestedSeed handles null before reaching here.
            return Ok(());
        }
        Err(self.wrong_type("null", "null".into()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.wrong_type("boolean", v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.wrong_type("number", v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.wrong_type("number", v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.wrong_type("number", v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.wrong_type("string", shorten(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        Err(self.wrong_type("array", String::new()))
    }
}

/// Which of an object's selected fields were read: a bit mask (no allocation per object and node)
/// up to 64 fields, a vector beyond.
enum Seen {
    Bits { bits: u64, len: usize },
    Many(Vec<bool>),
}

impl Seen {
    fn new(len: usize) -> Self {
        if len <= 64 { Seen::Bits { bits: 0, len } } else { Seen::Many(vec![false; len]) }
    }

    /// Marks field `index`; false when it was already marked.
    fn insert(&mut self, index: usize) -> bool {
        match self {
            Seen::Bits { bits, .. } => {
                let bit = 1u64 << index;
                let fresh = *bits & bit == 0;
                *bits |= bit;
                fresh
            }
            Seen::Many(seen) => !std::mem::replace(&mut seen[index], true),
        }
    }

    fn first_missing(&self) -> Option<usize> {
        match self {
            Seen::Bits { bits, len } => {
                let missing = (!bits).trailing_zeros() as usize;
                (missing < *len).then_some(missing)
            }
            Seen::Many(seen) => seen.iter().position(|s| !s),
        }
    }
}

/// A nested object value: `null` nulls every column below it.
struct NestedSeed<'a> {
    seed: ObjectSeed<'a>,
    path: &'a str,
    leaves: &'a [usize],
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        for &leaf in self.leaves {
            self.seed.builders[leaf].append_null();
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(ObjectVisitor { seed: self.seed, path: self.path })
    }
}

/// Matches an object key against the plan's field names without allocating.
struct FieldMatcher<'a>(&'a PlanObject);

impl<'de> DeserializeSeed<'de> for FieldMatcher<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldMatcher<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.fields.iter().position(|f| f.name == key))
    }
}

/// One leaf value into its column's builder.
struct LeafSeed<'a> {
    column: &'static ColumnSpec,
    builder: &'a mut ColumnBuilder,
    failure: &'a mut Option<Failure>,
    clock: &'a mut WallClockCache,
}

impl<'de> DeserializeSeed<'de> for LeafSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn json_name(repr: JsonRepr) -> &'static str {
    match repr {
        JsonRepr::String => "string",
        JsonRepr::Number => "number",
        JsonRepr::Boolean => "boolean",
    }
}

impl LeafSeed<'_> {
    fn refuse<E: de::Error>(self, value: String, reason: ConvertReason) -> E {
        fail(self.failure, self.column.name, value, reason)
    }

    fn expect_json<E: de::Error>(self, found: JsonRepr, value: impl FnOnce() -> String) -> Result<Self, E> {
        if self.column.json == found {
            Ok(self)
        } else {
            let expected = json_name(self.column.json);
            Err(self.refuse(value(), ConvertReason::WrongJsonType { expected, found: json_name(found) }))
        }
    }

    fn append_integer<E: de::Error>(self, value: i128) -> Result<(), E> {
        append_integer(self.column, self.builder, value).map_err(|(text, reason)| self.refuse(text, reason))
    }
}

/// A JSON integer into a number column; on refusal, the value's text and why.
fn append_integer(
    column: &ColumnSpec,
    builder: &mut ColumnBuilder,
    value: i128,
) -> Result<(), (String, ConvertReason)> {
    match builder {
        ColumnBuilder::Int64(b) => match i64::try_from(value) {
            Ok(v) => b.append_value(v),
            Err(_) => return Err((value.to_string(), ConvertReason::NotAnInteger)),
        },
        ColumnBuilder::Decimal { builder, precision, scale } => {
            let text = value.to_string();
            match xledger_model::decimal::parse_decimal(&text, *precision, *scale) {
                Ok(v) => builder.append_value(v),
                Err(e) => return Err((text, ConvertReason::Decimal(e.to_string()))),
            }
        }
        // Precision loss above 2^53 is inherent to a Float64 column.
        ColumnBuilder::Float64(b) => b.append_value(value as f64),
        _ => {
            let expected = json_name(column.json);
            return Err((value.to_string(), ConvertReason::WrongJsonType { expected, found: "number" }));
        }
    }
    Ok(())
}

/// A JSON boolean into a boolean column.
fn append_boolean(builder: &mut ColumnBuilder, value: bool) -> Result<(), ConvertReason> {
    match builder {
        ColumnBuilder::Boolean(b) => {
            b.append_value(value);
            Ok(())
        }
        _ => Err(ConvertReason::WrongJsonType { expected: "boolean-typed column", found: "boolean" }),
    }
}

/// A JSON string into its column, read as the column's type: text as is, decimals exactly,
/// date-times from the Central European wall clock, dates, integers, floats, booleans.
#[inline]
fn append_text(builder: &mut ColumnBuilder, clock: &mut WallClockCache, v: &str) -> Result<(), ConvertReason> {
    match builder {
        ColumnBuilder::Utf8(b) => {
            b.append_value(v);
            Ok(())
        }
        ColumnBuilder::Decimal { builder, precision, scale } => {
            xledger_model::decimal::parse_decimal(v, *precision, *scale)
                .map(|value| builder.append_value(value))
                .map_err(|e| ConvertReason::Decimal(e.to_string()))
        }
        ColumnBuilder::Timestamp(b) => clock.utc_micros(v).map(|t| b.append_value(t)).map_err(ConvertReason::Time),
        ColumnBuilder::Date(b) => {
            parse_date(v).map(|d| b.append_value(days_since_epoch(d))).map_err(ConvertReason::Time)
        }
        ColumnBuilder::Int64(b) => v.parse::<i64>().map(|n| b.append_value(n)).map_err(|_| ConvertReason::NotAnInteger),
        ColumnBuilder::Float64(b) => {
            v.parse::<f64>().map(|n| b.append_value(n)).map_err(|_| ConvertReason::BadText("float"))
        }
        ColumnBuilder::Boolean(b) => match v {
            "true" | "false" => {
                b.append_value(v == "true");
                Ok(())
            }
            _ => Err(ConvertReason::BadText("boolean")),
        },
    }
}

impl<'de> Visitor<'de> for LeafSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON {} or null", json_name(self.column.json))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if !self.column.nullable {
            return Err(self.refuse("null".into(), ConvertReason::UnexpectedNull));
        }
        self.builder.append_null();
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let this = self.expect_json(JsonRepr::Boolean, || v.to_string())?;
        append_boolean(this.builder, v).map_err(|reason| this.refuse(v.to_string(), reason))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.expect_json(JsonRepr::Number, || v.to_string())?.append_integer(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.expect_json(JsonRepr::Number, || v.to_string())?.append_integer(i128::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let this = self.expect_json(JsonRepr::Number, || v.to_string())?;
        match this.builder {
            ColumnBuilder::Float64(b) => b.append_value(v),
            // serde_json reports any number with a fraction or exponent as f64: the exact text is
            // gone, so a decimal or integer column refuses it rather than guess.
            ColumnBuilder::Decimal { .. } => {
                return Err(this.refuse(
                    v.to_string(),
                    ConvertReason::Decimal("a JSON float cannot be read exactly; expected a decimal string".into()),
                ));
            }
            _ => return Err(this.refuse(v.to_string(), ConvertReason::NotAnInteger)),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let this = self.expect_json(JsonRepr::String, || shorten(v))?;
        let outcome = append_text(this.builder, this.clock, v);
        outcome.map_err(|reason| this.refuse(shorten(v), reason))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        let expected = json_name(self.column.json);
        Err(self.refuse(String::new(), ConvertReason::WrongJsonType { expected, found: "object" }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        let expected = json_name(self.column.json);
        Err(self.refuse(String::new(), ConvertReason::WrongJsonType { expected, found: "array" }))
    }
}

/// Xledger date-times → UTC microseconds, fast.
///
/// The text is read by [`xledger_model::time::parse_wall_clock`] (by hand for the exact
/// `yyyy-MM-ddTHH:mm:ss` shape, which accepts or refuses it). The Central European offset is
/// constant within a wall-clock hour (transitions happen on whole hours, and the gap and overlap
/// hours resolve to UTC+1 throughout, see [`xledger_model::time`]), and on all but two days a year
/// constant for the whole day. So the offset is remembered per day, in a direct-mapped table
/// (4 096 days: any eleven consecutive years without a collision), computed on a miss from the 24
/// hour starts with [`xledger_model::time::oslo_to_utc`]; a day whose offset changes is looked
/// up per hour instead. A property test checks this path against `parse_xledger_datetime`
/// (`fast_path_agrees_with_xledger_model`).
#[derive(Debug)]
struct WallClockCache {
    /// Slot `day % DAYS`: (wall-clock day number since 1970, its offset in seconds, or
    /// [`Self::CHANGES`] for a day whose offset changes). `i64::MIN` marks an empty slot.
    days: Box<[(i64, i64)]>,
    /// Wall-clock hour (seconds since 1970 of the hour start, read as UTC) → UTC offset in seconds,
    /// for days whose offset changes.
    hours: std::collections::HashMap<i64, i64>,
}

impl Default for WallClockCache {
    fn default() -> Self {
        WallClockCache {
            days: vec![(i64::MIN, 0); Self::DAYS].into_boxed_slice(),
            hours: std::collections::HashMap::new(),
        }
    }
}

impl WallClockCache {
    const DAYS: usize = 4096;
    const MAX_HOURS: usize = 1 << 16;
    /// Not an offset (offsets are within ±24 h).
    const CHANGES: i64 = i64::MAX;

    fn utc_micros(&mut self, text: &str) -> Result<i64, String> {
        let wall = xledger_model::time::parse_wall_clock(text).map_err(|e| e.to_string())?.and_utc();
        let wall_seconds = wall.timestamp();
        let day = wall_seconds.div_euclid(86_400);
        let slot = &mut self.days[day.rem_euclid(Self::DAYS as i64) as usize];
        if slot.0 != day {
            *slot = (day, Self::day_offset(day));
        }
        let offset = match slot.1 {
            Self::CHANGES => self.hour_offset(wall_seconds.div_euclid(3600) * 3600),
            offset => offset,
        };
        Ok(wall.timestamp_micros() - offset * 1_000_000)
    }

    /// The offset in force all day long, or [`Self::CHANGES`].
    fn day_offset(day: i64) -> i64 {
        let offset = |hour: i64| Self::offset_at(day * 86_400 + hour * 3600);
        let first = offset(0);
        if (1..24).all(|hour| offset(hour) == first) { first } else { Self::CHANGES }
    }

    fn hour_offset(&mut self, hour_start: i64) -> i64 {
        if let Some(offset) = self.hours.get(&hour_start) {
            return *offset;
        }
        let offset = Self::offset_at(hour_start);
        if self.hours.len() >= Self::MAX_HOURS {
            self.hours.clear();
        }
        self.hours.insert(hour_start, offset);
        offset
    }

    /// The offset at a wall-clock hour start (seconds since 1970, read as UTC). The default for
    /// an unrepresentable instant is never used: day numbers come from parsed dates.
    fn offset_at(wall_hour_start: i64) -> i64 {
        let Some(wall) = DateTime::from_timestamp(wall_hour_start, 0) else { return 0 };
        wall_hour_start - xledger_model::time::oslo_to_utc(wall.naive_utc()).timestamp()
    }
}

/// `yyyy-MM-dd` via [`xledger_model::time::parse_xledger_date`].
fn parse_date(text: &str) -> Result<NaiveDate, String> {
    xledger_model::time::parse_xledger_date(text).map_err(|e| e.to_string())
}

/// Arrow's Date32: days since 1970-01-01.
pub(crate) fn days_since_epoch(date: NaiveDate) -> i32 {
    // Any NaiveDate is within ±262 143 years, i.e. under 96 million days: fits in i32.
    (date - NaiveDate::default()).num_days() as i32
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Int64Type, TimestampMicrosecondType};
    use serde_json::json;

    use super::*;

    fn entity(name: &str) -> &'static EntitySpec {
        xledger_model::entity(name).unwrap()
    }

    fn timesheet() -> serde_json::Value {
        json!({
            "dbId": "9000000001",
            "createdAt": "2024-03-31T02:30:00",
            "modifiedAt": "2024-10-27T02:30:00",
            "assignmentDate": "2024-03-31",
            "workingHours": "7.5",
            "isHeaderApproved": true,
            "headerApprovedAt": null,
            "hourlyRevenueCurrency": "1250.125",
            "owner": {"dbId": 1, "description": "Owner"},
            "employee": {"dbId": 2, "description": "Kari", "code": "K"},
            "activity": null,
            "timeType": {"code": "N", "description": "Normal"},
            "project": {"dbId": 3, "description": "P", "code": "P1"},
            "unselected": {"ignored": [1, 2, 3]}
        })
    }

    fn convert(name: &str, nodes: &[serde_json::Value]) -> Result<RecordBatch, ConvertError> {
        let texts: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        PageConverter::new(entity(name))
            .convert_nodes(texts.iter().map(|n| (n.as_str(), MutationType::Added)), DateTime::UNIX_EPOCH)
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        batch.column_by_name(name).unwrap()
    }

    #[test]
    fn values_become_exact_typed_columns() {
        let batch = convert("timesheets", &[timesheet()]).unwrap();
        assert_eq!(column(&batch, "dbId").as_primitive::<Int64Type>().value(0), 9_000_000_001);
        assert_eq!(column(&batch, "workingHours").as_primitive::<Decimal128Type>().value(0), 7_500_000);
        assert_eq!(column(&batch, "hourlyRevenueCurrency").as_primitive::<Decimal128Type>().value(0), 1_250_125_000);
        // Gap and overlap both read as UTC+1 (xledger_model::time).
        let created = column(&batch, "createdAt").as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!(DateTime::from_timestamp_micros(created).unwrap().to_rfc3339(), "2024-03-31T01:30:00+00:00");
        let modified = column(&batch, "modifiedAt").as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!(DateTime::from_timestamp_micros(modified).unwrap().to_rfc3339(), "2024-10-27T01:30:00+00:00");
        assert!(column(&batch, "headerApprovedAt").is_null(0));
        assert!(column(&batch, "isHeaderApproved").as_boolean().value(0));
    }

    #[test]
    fn fractional_seconds_are_kept_to_the_microsecond() {
        let mut node = timesheet();
        node["createdAt"] = json!("2025-06-30T12:34:56.789");
        let batch = convert("timesheets", &[node]).unwrap();
        let created = column(&batch, "createdAt").as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!(DateTime::from_timestamp_micros(created).unwrap().to_rfc3339(), "2025-06-30T10:34:56.789+00:00");
    }

    #[test]
    fn a_null_parent_nulls_all_its_columns() {
        let batch = convert("timesheets", &[timesheet()]).unwrap();
        assert!(column(&batch, "activity.code").is_null(0));
        assert!(column(&batch, "activity.description").is_null(0));
        assert!(!column(&batch, "timeType.code").is_null(0));
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let mut node = timesheet();
        node["project"].as_object_mut().unwrap().remove("code");
        let error = convert("timesheets", &[node]).unwrap_err();
        assert_eq!(
            (error.db_id, error.column.as_str(), &error.reason),
            (Some(9_000_000_001), "project.code", &ConvertReason::Missing)
        );
        let mut node = timesheet();
        node.as_object_mut().unwrap().remove("employee");
        assert_eq!(convert("timesheets", &[node]).unwrap_err().column, "employee");
    }

    #[test]
    fn a_value_of_the_wrong_json_type_is_refused_not_coerced() {
        let cases = [
            ("workingHours", json!(7.5), "string", "number"),
            ("isHeaderApproved", json!("true"), "boolean", "string"),
            ("dbId", json!(9000000001_i64), "string", "number"),
        ];
        for (field, value, expected, found) in cases {
            let mut node = timesheet();
            node[field] = value;
            let error = convert("timesheets", &[node]).unwrap_err();
            assert_eq!(error.column, field);
            assert_eq!(error.reason, ConvertReason::WrongJsonType { expected, found }, "{field}");
        }
        let mut node = timesheet();
        node["project"] = json!("P1");
        let error = convert("timesheets", &[node]).unwrap_err();
        assert_eq!(
            (error.column.as_str(), error.reason),
            ("project", ConvertReason::WrongJsonType { expected: "object", found: "string" })
        );
        let mut node = timesheet();
        node["project"]["dbId"] = json!("3");
        assert_eq!(convert("timesheets", &[node]).unwrap_err().column, "project.dbId");
    }

    #[test]
    fn decimals_with_more_digits_than_the_scale_or_not_numbers_are_refused() {
        for (text, fragment) in [
            ("7.1234567", "refusing to round"),
            ("1e3", "not a decimal"),
            ("", "not a decimal"),
            ("1,5", "not a decimal"),
        ] {
            let mut node = timesheet();
            node["workingHours"] = json!(text);
            let error = convert("timesheets", &[node]).unwrap_err();
            assert_eq!((error.column.as_str(), error.value.as_str()), ("workingHours", text));
            assert!(error.to_string().contains(fragment), "{error}");
        }
    }

    #[test]
    fn null_in_a_non_null_field_under_a_present_parent_is_refused() {
        let mut node = timesheet();
        node["project"]["dbId"] = json!(null);
        let error = convert("timesheets", &[node]).unwrap_err();
        assert_eq!((error.column.as_str(), error.reason), ("project.dbId", ConvertReason::UnexpectedNull));
    }

    #[test]
    fn bad_dates_and_date_times_are_refused() {
        for (field, text) in [
            ("assignmentDate", "31.03.2024"),
            ("createdAt", "2024-03-31 02:30:00"),
            ("createdAt", "2024-02-30T00:00:00"),
        ] {
            let mut node = timesheet();
            node[field] = json!(text);
            let error = convert("timesheets", &[node]).unwrap_err();
            assert_eq!((error.column.as_str(), error.value.as_str()), (field, text));
            assert!(matches!(error.reason, ConvertReason::Time(_)), "{error}");
        }
    }

    #[test]
    fn malformed_json_and_duplicates_are_refused() {
        let error = PageConverter::new(entity("timesheets"))
            .convert_nodes([(r#"{"dbId": "1", "dbId": "2"}"#, MutationType::Added)], DateTime::UNIX_EPOCH)
            .unwrap_err();
        assert_eq!((error.column.as_str(), error.reason), ("dbId", ConvertReason::DuplicateField));
        let error = convert("timesheets", &[timesheet(), timesheet()]).unwrap_err();
        assert_eq!((error.db_id, error.reason), (Some(9_000_000_001), ConvertReason::DuplicateDbId));
        let error = PageConverter::new(entity("timesheets"))
            .convert_nodes([("[1]", MutationType::Added)], DateTime::UNIX_EPOCH)
            .unwrap_err();
        assert_eq!(error.reason, ConvertReason::WrongJsonType { expected: "object", found: "array" });
    }

    #[test]
    fn a_failed_page_leaves_the_converter_clean() {
        let mut converter = PageConverter::new(entity("timesheets"));
        let mut bad = timesheet();
        bad["workingHours"] = json!("x");
        let texts = [timesheet().to_string(), bad.to_string()];
        let page: Vec<_> = texts.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
        assert!(converter.convert_nodes(page.iter().copied(), DateTime::UNIX_EPOCH).is_err());
        let batch = converter.convert_nodes(page[..1].iter().copied(), DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(batch.num_rows(), 1);
    }

    proptest::proptest! {
        /// The hand-written wall-clock path gives what `xledger_model::time` gives, for any text
        /// of the fixed shape (valid or not) and around every DST transition.
        #[test]
        fn fast_path_agrees_with_xledger_model(
            year in 1900u32..2100, month in 0u32..14, day in 0u32..33, hour in 0u32..25, minute in 0u32..61, second in 0u32..61,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            let fast = WallClockCache::default().utc_micros(&text).ok();
            let reference = xledger_model::time::parse_xledger_datetime(&text).ok().map(|t| t.timestamp_micros());
            proptest::prop_assert_eq!(fast, reference, "{}", text);
            let date = &text[..10];
            let fast = parse_date(date).ok();
            proptest::prop_assert_eq!(fast, xledger_model::time::parse_xledger_date(date).ok(), "{}", date);
        }

        /// One cache across many wall clocks (as in a page) still agrees, transitions included.
        #[test]
        fn a_shared_cache_agrees_with_xledger_model(hours in proptest::collection::vec(0i64..(200 * 366 * 24), 1..200), minute in 0u32..60) {
            let mut cache = WallClockCache::default();
            let base = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap().and_hms_opt(0, minute, 0).unwrap();
            for h in hours {
                let wall = base + chrono::Duration::hours(h);
                let text = wall.format("%Y-%m-%dT%H:%M:%S").to_string();
                let reference = xledger_model::time::parse_xledger_datetime(&text).unwrap().timestamp_micros();
                proptest::prop_assert_eq!(cache.utc_micros(&text).unwrap(), reference, "{}", text);
            }
        }
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let mut node = timesheet();
        node["workingHours"] = json!("9".repeat(1_000));
        let error = convert("timesheets", &[node]).unwrap_err();
        assert!(error.value.chars().count() <= MAX_VALUE_TEXT + 1, "{}", error.value.len());
    }
}
