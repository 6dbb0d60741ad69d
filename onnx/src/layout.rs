//! How an ONNX value is laid out in the graph. ONNX images are NCHW; the graph's are NHWC, so
//! a 4-D activation is kept in NHWC order and its ONNX (logical) shape is remembered beside it.
//! A flattened NHWC activation keeps the graph's `(h, w, c)` order: the weight rows of the
//! Gemm or MatMul that follows are permuted instead of the activation. Any other consumer gets
//! the ONNX order back through [`Live::plain`].

use shareflow_graphs::Tensor;

/// The order of a value's elements in the graph, relative to its ONNX shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As in ONNX.
    Plain,
    /// ONNX `[N, C, H, W]` held as `[N, H, W, C]`.
    Nhwc,
    /// ONNX `[N, C*H*W]` (a flattened NCHW activation) held in `(h, w, c)` order.
    FlatNhwc { c: usize, h: usize, w: usize },
}

/// A value computed by the graph.
#[derive(Clone)]
pub struct Live {
    /// The graph node.
    pub t: Tensor,
    /// How the node's elements relate to the ONNX shape.
    pub layout: Layout,
    /// The ONNX shape (NCHW for images).
    pub shape: Vec<usize>,
    /// Zero padding `[top, left, bottom, right]` that an ONNX `Pad` added and that the
    /// following `Conv` takes over (the graph has no padding op of its own).
    pub pads: Option<[usize; 4]>,
}

impl Live {
    /// A value in ONNX order.
    pub fn plain(t: Tensor, shape: Vec<usize>) -> Live {
        Live {
            t,
            layout: Layout::Plain,
            shape,
            pads: None,
        }
    }

    /// The same value in ONNX order (a transpose, or a reshape-transpose-reshape, when it is
    /// not).
    pub fn to_plain(&self) -> Live {
        let t = match self.layout {
            Layout::Plain => return self.clone(),
            Layout::Nhwc => self.t.transpose(&[0, 3, 1, 2]),
            Layout::FlatNhwc { c, h, w } => {
                let n = self.shape.first().copied().unwrap_or(1);
                self.t
                    .reshape([n, h, w, c])
                    .transpose(&[0, 3, 1, 2])
                    .reshape([n, c * h * w])
            }
        };
        Live::plain(t, self.shape.clone())
    }

    /// The same 4-D value in NHWC order, or `None` when it is not 4-D.
    pub fn to_nhwc(&self) -> Option<Live> {
        if self.shape.len() != 4 {
            return None;
        }
        match self.layout {
            Layout::Nhwc => Some(self.clone()),
            Layout::Plain => Some(Live {
                t: self.t.transpose(&[0, 2, 3, 1]),
                layout: Layout::Nhwc,
                shape: self.shape.clone(),
                pads: self.pads,
            }),
            Layout::FlatNhwc { .. } => None,
        }
    }
}

/// For a flattened `(c, h, w)` vector, the ONNX index of each graph position `(h, w, c)`.
pub fn flat_nhwc_order(c: usize, h: usize, w: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(c * h * w);
    for hi in 0..h {
        for wi in 0..w {
            for ci in 0..c {
                order.push((ci * h + hi) * w + wi);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_order_maps_hwc_positions_to_chw_indices() {
        // c=2, h=1, w=2: graph order (w0,c0) (w0,c1) (w1,c0) (w1,c1) = ONNX 0, 2, 1, 3.
        assert_eq!(flat_nhwc_order(2, 1, 2), vec![0, 2, 1, 3]);
        assert_eq!(flat_nhwc_order(1, 2, 2), vec![0, 1, 2, 3]);
    }
}
