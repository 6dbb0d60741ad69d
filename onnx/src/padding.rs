//! ONNX's explicit window padding as the graph's `Valid` or `Same` (TensorFlow's: the extra
//! row or column at the bottom or right).

use shareflow_graphs::Padding;

/// A window over one spatial axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Input length.
    pub input: usize,
    /// Window length.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding before and after.
    pub pads: [usize; 2],
    /// Whether the output length rounds up (`ceil_mode` of the pools).
    pub ceil: bool,
}

impl Axis {
    /// The ONNX output length, or `None` when the window does not fit.
    pub fn output(&self) -> Option<usize> {
        let padded = self.input + self.pads[0] + self.pads[1];
        if self.stride == 0 || padded < self.kernel {
            return None;
        }
        let span = padded - self.kernel;
        Some(
            if self.ceil {
                span.div_ceil(self.stride)
            } else {
                span / self.stride
            } + 1,
        )
    }

    /// Whether `padding` computes the same windows: the same output length and the same
    /// padding before (padding after that no window reaches does not matter).
    fn matches(&self, padding: Padding) -> bool {
        let Some(out) = padding.output_len(self.input, self.kernel, self.stride) else {
            return false;
        };
        let before = match padding {
            Padding::Valid => 0,
            Padding::Same => ((out - 1) * self.stride + self.kernel).saturating_sub(self.input) / 2,
        };
        self.output() == Some(out) && self.pads[0] == before
    }
}

/// The graph padding equal to ONNX's `auto_pad` and explicit pads on both axes, or why there
/// is none.
pub fn choose(auto_pad: &str, axes: [Axis; 2]) -> Result<Padding, String> {
    match auto_pad {
        "SAME_UPPER" => return Ok(Padding::Same),
        "VALID" => return Ok(Padding::Valid),
        "" | "NOTSET" | "SAME_LOWER" => {}
        other => return Err(format!("auto_pad {other:?} is not supported")),
    }
    if auto_pad == "SAME_LOWER" {
        // Equal to SAME_UPPER when the total padding is even on both axes.
        let even = axes.iter().all(|a| {
            Padding::Same
                .output_len(a.input, a.kernel, a.stride)
                .is_some_and(|out| {
                    ((out - 1) * a.stride + a.kernel).saturating_sub(a.input) % 2 == 0
                })
        });
        return if even {
            Ok(Padding::Same)
        } else {
            Err("auto_pad SAME_LOWER with an odd total padding is not supported".into())
        };
    }
    for padding in [Padding::Valid, Padding::Same] {
        if axes.iter().all(|a| a.matches(padding)) {
            return Ok(padding);
        }
    }
    Err(format!(
        "pads [{}, {}, {}, {}] (top, left, bottom, right) are neither VALID nor SAME (the extra \
         row or column at the bottom or right) for this input, kernel and stride",
        axes[0].pads[0], axes[1].pads[0], axes[0].pads[1], axes[1].pads[1]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, kernel: usize, stride: usize, pads: [usize; 2]) -> Axis {
        Axis {
            input,
            kernel,
            stride,
            pads,
            ceil: false,
        }
    }

    #[test]
    fn explicit_pads_become_valid_or_same() {
        let a = axis(28, 5, 1, [0, 0]);
        assert_eq!(choose("NOTSET", [a, a]), Ok(Padding::Valid));
        let a = axis(28, 5, 1, [2, 2]);
        assert_eq!(choose("", [a, a]), Ok(Padding::Same));
        // Stride 2, 5x5 over 28: SAME pads 1 before and 2 after.
        let a = axis(28, 5, 2, [1, 2]);
        assert_eq!(choose("", [a, a]), Ok(Padding::Same));
        // PyTorch's symmetric padding=2 starts the windows one cell earlier: not SAME.
        let a = axis(28, 5, 2, [2, 2]);
        assert!(choose("", [a, a])
            .unwrap_err()
            .contains("pads [2, 2, 2, 2]"));
        // A 2x2 pool over 8 with a padding after that no window reaches is VALID; over 7 the
        // same padding is reached: SAME.
        let a = axis(8, 2, 2, [0, 1]);
        assert_eq!(choose("", [a, a]), Ok(Padding::Valid));
        let a = axis(7, 2, 2, [0, 1]);
        assert_eq!(choose("", [a, a]), Ok(Padding::Same));
    }
}
