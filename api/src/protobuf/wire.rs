//! The protobuf wire format: field keys, varints, fixed-width and length-delimited values.

use super::error::ProtobufError;

/// One field value as it sits on the wire, before the schema gives it a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    LengthDelimited(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number, for error messages.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            Self::Varint(_) => 0,
            Self::Fixed64(_) => 1,
            Self::LengthDelimited(_) => 2,
            Self::Fixed32(_) => 5,
        }
    }
}

/// Reads the fields of one message in wire order.
pub(crate) struct FieldReader<'a> {
    rest: &'a [u8],
    /// Proto name of the message being read, for errors.
    message: &'static str,
}

impl<'a> FieldReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], message: &'static str) -> Self {
        Self {
            rest: bytes,
            message,
        }
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, WireValue<'a>)>, ProtobufError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        // The low three bits always fit in a u8.
        let wire_type = (key & 0x7) as u8;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(ProtobufError::InvalidKey {
                message: self.message,
                field,
                wire_type,
            });
        }
        let value = match wire_type {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.truncated())?;
                WireValue::LengthDelimited(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take_array()?)),
            _ => {
                return Err(ProtobufError::InvalidKey {
                    message: self.message,
                    field,
                    wire_type,
                });
            }
        };
        Ok(Some((field, value)))
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for (index, byte) in self.rest.iter().enumerate() {
            if index == 10 {
                return Err(ProtobufError::MalformedVarint {
                    message: self.message,
                });
            }
            // Bits past the 64th of a 10-byte varint are dropped, as Go's decoder does.
            value |= u64::from(byte & 0x7f)
                .checked_shl(7 * index as u32)
                .unwrap_or(0);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[index + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() >= 10 {
            Err(ProtobufError::MalformedVarint {
                message: self.message,
            })
        } else {
            Err(self.truncated())
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        if len > self.rest.len() {
            return Err(self.truncated());
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.truncated())
    }

    fn truncated(&self) -> ProtobufError {
        ProtobufError::Truncated {
            message: self.message,
        }
    }
}

/// Decodes a packed run of varints (proto3-style `repeated int32 [packed=true]`).
pub(crate) fn packed_varints(
    bytes: &[u8],
    message: &'static str,
) -> Result<Vec<u64>, ProtobufError> {
    let mut reader = FieldReader::new(bytes, message);
    let mut values = Vec::new();
    while !reader.rest.is_empty() {
        values.push(reader.varint()?);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed32 1, field 4 fixed64 2
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let mut reader = FieldReader::new(&bytes, "Test");
        assert_eq!(
            reader.next_field().unwrap(),
            Some((1, WireValue::Varint(150)))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((2, WireValue::LengthDelimited(b"hi")))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((3, WireValue::Fixed32(1)))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((4, WireValue::Fixed64(2)))
        );
        assert_eq!(reader.next_field().unwrap(), None);
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let bytes = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let mut reader = FieldReader::new(&bytes, "Test");
        let Some((1, WireValue::Varint(raw))) = reader.next_field().unwrap() else {
            panic!("expected a varint");
        };
        assert_eq!(raw as i64, -1);
    }

    #[test]
    fn rejects_truncation_overlong_varints_groups_and_field_zero() {
        let truncated_len = [0x12, 0x05, b'a'];
        assert_eq!(
            FieldReader::new(&truncated_len, "T").next_field(),
            Err(ProtobufError::Truncated { message: "T" })
        );
        let truncated_varint = [0x08, 0x80];
        assert_eq!(
            FieldReader::new(&truncated_varint, "T").next_field(),
            Err(ProtobufError::Truncated { message: "T" })
        );
        let overlong = [
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        assert_eq!(
            FieldReader::new(&overlong, "T").next_field(),
            Err(ProtobufError::MalformedVarint { message: "T" })
        );
        let group = [0x0b];
        assert_eq!(
            FieldReader::new(&group, "T").next_field(),
            Err(ProtobufError::InvalidKey {
                message: "T",
                field: 1,
                wire_type: 3
            })
        );
        let field_zero = [0x00, 0x00];
        assert_eq!(
            FieldReader::new(&field_zero, "T").next_field(),
            Err(ProtobufError::InvalidKey {
                message: "T",
                field: 0,
                wire_type: 0
            })
        );
        let huge_len = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(FieldReader::new(&huge_len, "T").next_field().is_err());
    }

    #[test]
    fn packed_varints_decode_in_order() {
        assert_eq!(
            packed_varints(&[1, 0x96, 0x01, 3], "T").unwrap(),
            vec![1, 150, 3]
        );
        assert_eq!(
            packed_varints(&[0x80], "T"),
            Err(ProtobufError::Truncated { message: "T" })
        );
    }
}
