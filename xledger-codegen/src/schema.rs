//! The parts of the schema snapshot the analysis looks things up in.

use std::collections::{BTreeSet, HashMap};

use graphql_parser::schema as s;

/// Named, typed members of an object, input or argument list, in declaration order.
pub(crate) type Members<'a> = Vec<(&'a str, s::Type<'a, &'a str>)>;

pub(crate) struct Schema<'a> {
    /// Object and interface types with their fields.
    pub(crate) objects: HashMap<&'a str, Members<'a>>,
    pub(crate) inputs: HashMap<&'a str, Members<'a>>,
    pub(crate) enums: BTreeSet<&'a str>,
    pub(crate) scalars: BTreeSet<&'a str>,
    /// Arguments of every object field, keyed by (type, field): the filter types live there.
    pub(crate) arguments: HashMap<(&'a str, &'a str), Members<'a>>,
    pub(crate) query_type: &'a str,
    /// `None` when the schema has no subscription type.
    pub(crate) subscription_type: Option<&'a str>,
}

impl<'a> Schema<'a> {
    /// Errors read after "schema/xledger.graphql ".
    pub(crate) fn parse(sdl: &'a str) -> Result<Self, String> {
        let doc = s::parse_schema::<&str>(sdl).map_err(|e| format!("does not parse: {e}"))?;
        let mut schema = Schema {
            objects: HashMap::new(),
            inputs: HashMap::new(),
            enums: BTreeSet::new(),
            scalars: ["Int", "Float", "String", "Boolean", "ID"].into_iter().collect(),
            arguments: HashMap::new(),
            query_type: "Query",
            subscription_type: None,
        };
        // Without a `schema { … }` definition the root types go by their default names.
        let mut subscription_type = "Subscription";
        for def in doc.definitions {
            match def {
                s::Definition::SchemaDefinition(d) => {
                    if let Some(q) = d.query {
                        schema.query_type = q;
                    }
                    if let Some(sub) = d.subscription {
                        subscription_type = sub;
                    }
                }
                s::Definition::TypeDefinition(t) => match t {
                    s::TypeDefinition::Object(o) => schema.object(o.name, o.fields),
                    s::TypeDefinition::Interface(o) => schema.object(o.name, o.fields),
                    s::TypeDefinition::InputObject(o) => {
                        schema.inputs.insert(o.name, o.fields.into_iter().map(|f| (f.name, f.value_type)).collect());
                    }
                    s::TypeDefinition::Enum(e) => {
                        schema.enums.insert(e.name);
                    }
                    s::TypeDefinition::Scalar(sc) => {
                        schema.scalars.insert(sc.name);
                    }
                    s::TypeDefinition::Union(_) => {}
                },
                s::Definition::TypeExtension(_) | s::Definition::DirectiveDefinition(_) => {}
            }
        }
        if !schema.objects.contains_key(schema.query_type) {
            return Err(format!("has no query type `{}`", schema.query_type));
        }
        schema.subscription_type = schema.objects.contains_key(subscription_type).then_some(subscription_type);
        Ok(schema)
    }

    fn object(&mut self, name: &'a str, fields: Vec<s::Field<'a, &'a str>>) {
        for f in &fields {
            let args = f.arguments.iter().map(|a| (a.name, a.value_type.clone())).collect();
            self.arguments.insert((name, f.name), args);
        }
        self.objects.insert(name, fields.into_iter().map(|f| (f.name, f.field_type)).collect());
    }

    pub(crate) fn field(&self, type_name: &str, field: &str) -> Result<&s::Type<'a, &'a str>, String> {
        let fields = self.objects.get(type_name).ok_or_else(|| format!("type `{type_name}` is not an object type"))?;
        fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("type `{type_name}` has no field `{field}`"))
    }

    pub(crate) fn is_object(&self, type_name: &str) -> bool {
        self.objects.contains_key(type_name)
    }
}

/// The named type under any list and non-null wrappers.
pub(crate) fn named<'a>(t: &s::Type<'a, &'a str>) -> &'a str {
    match t {
        s::Type::NamedType(n) => n,
        s::Type::ListType(inner) | s::Type::NonNullType(inner) => named(inner),
    }
}

pub(crate) fn is_list<'a>(t: &s::Type<'a, &'a str>) -> bool {
    match t {
        s::Type::NamedType(_) => false,
        s::Type::ListType(_) => true,
        s::Type::NonNullType(inner) => is_list(inner),
    }
}

pub(crate) fn is_non_null<'a>(t: &s::Type<'a, &'a str>) -> bool {
    matches!(t, s::Type::NonNullType(_))
}
