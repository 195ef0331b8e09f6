//! The shape of the generated wire schema: messages, their fields and each field's JSON form.

/// One protobuf message type and how its JSON looks.
#[derive(Debug)]
pub(crate) struct Message {
    /// Fully qualified proto name, e.g. `k8s.io.api.apps.v1.Deployment`; used in errors.
    pub(crate) name: &'static str,
    /// Whether the JSON form is an object or one of the apimachinery special forms.
    pub(crate) form: Form,
    pub(crate) fields: &'static [Field],
}

/// JSON form of a message: an object, or a scalar with its own Go `MarshalJSON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Object,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `metav1.Time`: RFC 3339 in seconds, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with 6 decimals, `null` when zero.
    MicroTime,
    /// `metav1.FieldsV1`: embedded JSON.
    FieldsV1,
    /// `runtime.RawExtension`: embedded JSON (or a nested protobuf object).
    RawExtension,
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cardinality {
    Single,
    Repeated,
    /// `map<string, V>`: entries with key = 1 and value = 2.
    Map,
}

/// Proto type of a field's values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    Bytes,
    Int32,
    Int64,
    String,
    Message(&'static Message),
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) number: u32,
    /// Go JSON name; empty for inline fields.
    pub(crate) json_name: &'static str,
    pub(crate) cardinality: Cardinality,
    pub(crate) kind: Kind,
    /// Go `json:",inline"`: the nested message's fields belong to the parent object.
    pub(crate) inline: bool,
    /// A non-pointer Go scalar with `omitempty`: its zero value is absent from the JSON.
    pub(crate) omit_zero: bool,
}

impl Field {
    const fn new(
        number: u32,
        json_name: &'static str,
        cardinality: Cardinality,
        kind: Kind,
    ) -> Self {
        Self {
            number,
            json_name,
            cardinality,
            kind,
            inline: false,
            omit_zero: false,
        }
    }

    pub(crate) const fn single(number: u32, json_name: &'static str, kind: Kind) -> Self {
        Self::new(number, json_name, Cardinality::Single, kind)
    }

    pub(crate) const fn repeated(number: u32, json_name: &'static str, kind: Kind) -> Self {
        Self::new(number, json_name, Cardinality::Repeated, kind)
    }

    pub(crate) const fn map(number: u32, json_name: &'static str, kind: Kind) -> Self {
        Self::new(number, json_name, Cardinality::Map, kind)
    }

    pub(crate) const fn inline(self) -> Self {
        Self {
            inline: true,
            ..self
        }
    }

    pub(crate) const fn omit_zero(self) -> Self {
        Self {
            omit_zero: true,
            ..self
        }
    }
}
