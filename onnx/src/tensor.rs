//! Decoding of ONNX tensors and attributes into ndarray values.

use ndarray::{ArrayD, IxDyn};

use crate::error::OnnxError;
use crate::proto::{attribute_proto::AttributeType, tensor_proto::DataType};
use crate::proto::{AttributeProto, TensorProto};

/// A tensor known at import time: an initializer (the model owner's weight) or the value of
/// a `Constant` node (public).
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The ONNX name of the value.
    pub name: String,
    /// The values as f32 (integers converted).
    pub array: ArrayD<f32>,
    /// The exact values when the tensor holds integers (shapes, axes, pads).
    pub ints: Option<Vec<i64>>,
    /// Whether the value is the model owner's secret (an initializer) rather than public.
    pub private: bool,
}

fn err(name: &str, message: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Decodes `t` (float, double or integer data, inline or raw little-endian bytes).
pub fn decode(t: &TensorProto, private: bool) -> Result<Known, OnnxError> {
    let name = t.name().to_string();
    if t.data_location() == crate::proto::tensor_proto::DataLocation::External {
        return Err(err(
            &name,
            "data stored outside the .onnx file (external data) is not supported",
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(&name, format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let count: usize = dims.iter().product();
    let raw = t.raw_data.as_deref();
    let dtype = DataType::try_from(t.data_type())
        .map_err(|_| err(&name, format!("unknown data type {}", t.data_type())))?;
    let chunks = |width: usize| -> Result<Vec<&[u8]>, OnnxError> {
        let raw = raw.unwrap_or_default();
        if raw.len() != count * width {
            return Err(err(
                &name,
                format!(
                    "{} raw bytes for {count} values of {width} bytes",
                    raw.len()
                ),
            ));
        }
        Ok(raw.chunks_exact(width).collect())
    };
    let (floats, ints): (Vec<f32>, Option<Vec<i64>>) = match dtype {
        DataType::Float => match raw {
            Some(_) => (
                chunks(4)?
                    .into_iter()
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                None,
            ),
            None => (t.float_data.clone(), None),
        },
        DataType::Double => match raw {
            Some(_) => (
                chunks(8)?
                    .into_iter()
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        f64::from_le_bytes(b) as f32
                    })
                    .collect(),
                None,
            ),
            None => (t.double_data.iter().map(|&v| v as f32).collect(), None),
        },
        DataType::Int64 => {
            let v: Vec<i64> = match raw {
                Some(_) => chunks(8)?
                    .into_iter()
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        i64::from_le_bytes(b)
                    })
                    .collect(),
                None => t.int64_data.clone(),
            };
            (v.iter().map(|&x| x as f32).collect(), Some(v))
        }
        DataType::Int32 => {
            let v: Vec<i64> = match raw {
                Some(_) => chunks(4)?
                    .into_iter()
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                None => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            (v.iter().map(|&x| x as f32).collect(), Some(v))
        }
        other => {
            return Err(err(
                &name,
                format!("data type {} is not supported", other.as_str_name()),
            ))
        }
    };
    if floats.len() != count {
        return Err(err(
            &name,
            format!("{} values for dimensions {dims:?}", floats.len()),
        ));
    }
    let array =
        ArrayD::from_shape_vec(IxDyn(&dims), floats).map_err(|e| err(&name, e.to_string()))?;
    Ok(Known {
        name,
        array,
        ints,
        private,
    })
}

/// The attributes of one node, looked up by name.
pub struct Attrs<'a> {
    attrs: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    /// The attributes `attrs`.
    pub fn new(attrs: &'a [AttributeProto]) -> Self {
        Attrs { attrs }
    }

    /// The attribute `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name() == name)
    }

    /// The names of every attribute present.
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.attrs.iter().map(|a| a.name())
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i())
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f())
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    /// A string attribute, or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(a.s()).into_owned()
        })
    }

    /// The tensor value of a `Constant` node (from `value`, `value_float(s)` or
    /// `value_int(s)`), named `output`.
    pub fn constant(&self, output: &str) -> Result<Known, OnnxError> {
        let scalar = |v: f32, int: Option<i64>| Known {
            name: output.to_string(),
            array: ArrayD::from_elem(IxDyn(&[]), v),
            ints: int.map(|i| vec![i]),
            private: false,
        };
        let vector = |v: Vec<f32>, ints: Option<Vec<i64>>| Known {
            name: output.to_string(),
            array: ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap_or_default(),
            ints,
            private: false,
        };
        for a in self.attrs {
            match (a.name(), a.r#type()) {
                ("value", _) => {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| err(output, "value without a tensor"))?;
                    let mut k = decode(t, false)?;
                    k.name = output.to_string();
                    return Ok(k);
                }
                ("value_float", AttributeType::Float | AttributeType::Undefined) => {
                    return Ok(scalar(a.f(), None))
                }
                ("value_int", AttributeType::Int | AttributeType::Undefined) => {
                    return Ok(scalar(a.i() as f32, Some(a.i())))
                }
                ("value_floats", AttributeType::Floats | AttributeType::Undefined) => {
                    return Ok(vector(a.floats.clone(), None))
                }
                ("value_ints", AttributeType::Ints | AttributeType::Undefined) => {
                    return Ok(vector(
                        a.ints.iter().map(|&i| i as f32).collect(),
                        Some(a.ints.clone()),
                    ))
                }
                _ => {}
            }
        }
        Err(err(
            output,
            "Constant without a value, value_float(s) or value_int(s) attribute",
        ))
    }
}
