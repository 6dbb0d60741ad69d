//! The builder API: [`GraphBuilder`] hands out [`Tensor`] handles whose methods and operators
//! (`+ - *`) add nodes. Shapes are inferred as nodes are added; the first error is kept and
//! returned by [`GraphBuilder::build`], naming the node.

use std::cell::RefCell;
use std::ops;
use std::rc::Rc;

use crate::error::GraphError;
use crate::graph::{Graph, Node};
use crate::infer::{infer, InputInfo};
use crate::op::{Init, Op, Window};
use crate::types::{DType, Padding, Shape, Visibility};
use crate::{NodeId, PartyId};

pub(crate) struct State {
    pub(crate) graph: Graph,
    pub(crate) error: Option<GraphError>,
    counter: usize,
    scope: Vec<String>,
}

/// Builds a [`Graph`].
#[derive(Clone)]
pub struct GraphBuilder {
    pub(crate) state: Rc<RefCell<State>>,
}

/// A handle to a node under construction.
#[derive(Clone)]
pub struct Tensor {
    id: NodeId,
    state: Rc<RefCell<State>>,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        let graph = Graph::empty();
        GraphBuilder {
            state: Rc::new(RefCell::new(State {
                graph,
                error: None,
                counter: 0,
                scope: Vec::new(),
            })),
        }
    }

    /// Declares a party (or returns the id it already has).
    pub fn party(&self, name: &str) -> PartyId {
        let mut s = self.state.borrow_mut();
        if let Some(p) = s.graph.party(name) {
            return p;
        }
        match s.graph.add_party(name.to_string()) {
            Ok(p) => p,
            Err(e) => {
                s.error.get_or_insert(e);
                PartyId(0)
            }
        }
    }

    /// Runs `f` with node names prefixed by `scope/`.
    pub fn scoped<T>(&self, scope: &str, f: impl FnOnce() -> T) -> T {
        self.state.borrow_mut().scope.push(scope.to_string());
        let out = f();
        self.state.borrow_mut().scope.pop();
        out
    }

    /// A private input that `party` provides at run time.
    pub fn input(&self, party: PartyId, name: &str, shape: impl Into<Shape>) -> Tensor {
        let name = self.scoped_name(name);
        add(
            &self.state,
            Op::Input {
                party,
                name: name.clone(),
            },
            Some(name),
            shape.into(),
            &[],
        )
    }

    /// A trainable variable: a value the servers hold across the runs of a session, whose
    /// first value comes from `init` (see [`Op::Variable`]).
    pub fn variable(&self, name: &str, shape: impl Into<Shape>, init: Init) -> Tensor {
        self.variable_with(name, shape, init, true)
    }

    /// A variable that is trainable or not (a frozen layer, an optimiser's velocity).
    pub fn variable_with(
        &self,
        name: &str,
        shape: impl Into<Shape>,
        init: Init,
        trainable: bool,
    ) -> Tensor {
        let name = self.scoped_name(name);
        add(
            &self.state,
            Op::Variable {
                name: name.clone(),
                init,
                trainable,
            },
            Some(name),
            shape.into(),
            &[],
        )
    }

    /// Makes `value` the next value of `variable` (an [`Op::Assign`], a root of the graph).
    pub fn assign(&self, variable: &Tensor, value: &Tensor) -> Tensor {
        let name = match self.state.borrow().graph.node(variable.id) {
            Ok(n) => format!("{}/assign", n.name),
            Err(_) => "assign".into(),
        };
        add(
            &self.state,
            Op::Assign,
            Some(name),
            Shape::default(),
            &[variable.id, value.id],
        )
    }

    /// A public value given to every party at each run under `name` (see
    /// [`Op::Parameter`]).
    pub fn parameter(&self, name: &str, shape: impl Into<Shape>) -> Tensor {
        let name = self.scoped_name(name);
        add(
            &self.state,
            Op::Parameter { name: name.clone() },
            Some(name),
            shape.into(),
            &[],
        )
    }

    /// A public constant (row-major values).
    pub fn constant(&self, shape: impl Into<Shape>, values: Vec<f32>) -> Tensor {
        add(
            &self.state,
            Op::Constant { values },
            None,
            shape.into(),
            &[],
        )
    }

    /// The handle of an existing node.
    pub fn tensor(&self, id: NodeId) -> Tensor {
        Tensor {
            id,
            state: self.state.clone(),
        }
    }

    fn scoped_name(&self, name: &str) -> String {
        let s = self.state.borrow();
        let mut full = s.scope.join("/");
        if !full.is_empty() {
            full.push('/');
        }
        full.push_str(name);
        full
    }

    /// Records `error` as the builder's error unless one is already kept (a layer that cannot
    /// be built says why; [`GraphBuilder::build`] returns the first error).
    pub fn fail(&self, error: GraphError) {
        self.state.borrow_mut().error.get_or_insert(error);
    }

    /// How many nodes the graph has so far (the nodes a layer adds are those numbered from
    /// the count before it to the count after it).
    pub fn node_count(&self) -> usize {
        self.state.borrow().graph.len()
    }

    /// Validates and returns the graph, or the first error met while building.
    pub fn build(&self) -> Result<Graph, GraphError> {
        let s = self.state.borrow();
        if let Some(e) = &s.error {
            return Err(e.clone());
        }
        let mut g = s.graph.clone();
        g.validate()?;
        Ok(g)
    }
}

pub(crate) fn add(
    state: &Rc<RefCell<State>>,
    op: Op,
    name: Option<String>,
    own_shape: Shape,
    inputs: &[NodeId],
) -> Tensor {
    let mut s = state.borrow_mut();
    s.counter += 1;
    let name = name.unwrap_or_else(|| {
        let mut n = s.scope.join("/");
        if !n.is_empty() {
            n.push('/');
        }
        n.push_str(&format!("{}_{}", op.name(), s.counter));
        n
    });
    let label = format!("n{} '{}'", s.graph.len(), name);
    let inferred = {
        let mut infos = Vec::with_capacity(inputs.len());
        let mut missing = None;
        for &i in inputs {
            match s.graph.node(i) {
                Ok(n) => infos.push(InputInfo {
                    label: s.graph.label(i),
                    shape: &n.shape,
                    visibility: n.visibility,
                }),
                Err(e) => missing = Some(e),
            }
        }
        match missing {
            Some(e) => Err(e),
            None => infer(&label, &op, &own_shape, &infos),
        }
    };
    let (shape, visibility) = match inferred {
        Ok(sv) => sv,
        Err(e) => {
            s.error.get_or_insert(e);
            (Shape::default(), Visibility::Shared)
        }
    };
    let node = Node {
        name,
        op,
        shape,
        dtype: DType::Float,
        visibility,
    };
    let id = s.graph.push(node, inputs);
    Tensor {
        id,
        state: state.clone(),
    }
}

impl Tensor {
    /// The node this tensor is the value of.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The inferred shape (empty after an error).
    pub fn shape(&self) -> Shape {
        let s = self.state.borrow();
        s.graph
            .node(self.id)
            .map(|n| n.shape.clone())
            .unwrap_or_default()
    }

    /// The inferred visibility.
    pub fn visibility(&self) -> Visibility {
        let s = self.state.borrow();
        s.graph
            .node(self.id)
            .map(|n| n.visibility)
            .unwrap_or(Visibility::Shared)
    }

    /// The node's op (`None` for a node that does not exist).
    pub fn op(&self) -> Option<Op> {
        self.state
            .borrow()
            .graph
            .node(self.id)
            .ok()
            .map(|n| n.op.clone())
    }

    /// How errors name the node.
    pub fn label(&self) -> String {
        self.state.borrow().graph.label(self.id)
    }

    /// Renames the node.
    pub fn named(self, name: &str) -> Tensor {
        if let Some(n) = self.state.borrow_mut().graph.node_mut(self.id) {
            n.name = name.to_string();
        }
        self
    }

    fn unary(&self, op: Op) -> Tensor {
        add(&self.state, op, None, Shape::default(), &[self.id])
    }

    fn binary(&self, op: Op, other: &Tensor) -> Tensor {
        add(
            &self.state,
            op,
            None,
            Shape::default(),
            &[self.id, other.id],
        )
    }

    /// Elementwise `self + other`; `other` may be a trailing bias (see [`Op::Add`]).
    pub fn add(&self, other: &Tensor) -> Tensor {
        self.binary(Op::Add, other)
    }
    /// Elementwise `self - other`, broadcasting as [`Tensor::add`].
    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.binary(Op::Sub, other)
    }
    /// Elementwise `self * other`, broadcasting as [`Tensor::add`].
    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.binary(Op::Mul, other)
    }
    /// Elementwise `-self`.
    pub fn neg(&self) -> Tensor {
        self.unary(Op::Neg)
    }
    /// The matrix product `[m, k] x [k, n]`.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.binary(Op::MatMul, other)
    }
    /// NHWC input by HWIO filter.
    pub fn conv2d(&self, filter: &Tensor, stride: [usize; 2], padding: Padding) -> Tensor {
        self.binary(Op::Conv2d { stride, padding }, filter)
    }
    /// Max pooling of an NHWC value with windows of `size` moved by `stride`.
    pub fn maxpool2d(&self, size: [usize; 2], stride: [usize; 2], padding: Padding) -> Tensor {
        self.unary(Op::MaxPool2d {
            window: Window {
                size,
                stride,
                padding,
            },
        })
    }
    /// Average pooling of an NHWC value with windows of `size` moved by `stride`.
    pub fn avgpool2d(&self, size: [usize; 2], stride: [usize; 2], padding: Padding) -> Tensor {
        self.unary(Op::AvgPool2d {
            window: Window {
                size,
                stride,
                padding,
            },
        })
    }
    /// Elementwise `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.unary(Op::Relu)
    }
    /// Elementwise `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Tensor {
        self.unary(Op::Sigmoid)
    }
    /// Softmax over the last axis.
    pub fn softmax(&self) -> Tensor {
        self.unary(Op::Softmax)
    }
    /// Inference batch normalisation with public statistics over the last axis.
    pub fn batchnorm(
        &self,
        mean: &Tensor,
        var: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        epsilon: f32,
    ) -> Tensor {
        add(
            &self.state,
            Op::BatchNorm { epsilon },
            None,
            Shape::default(),
            &[self.id, mean.id, var.id, gamma.id, beta.id],
        )
    }
    /// The same elements in `shape` (row-major; same number of elements).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        self.unary(Op::Reshape {
            shape: shape.into().0,
        })
    }
    /// Keeps the first (batch) axis and flattens the rest, in row-major (NHWC) order.
    pub fn flatten(&self) -> Tensor {
        let dims = self.shape().0;
        let batch = dims.first().copied().unwrap_or(1);
        let rest = dims.iter().skip(1).product::<usize>();
        self.reshape([batch, rest])
    }
    /// Permutes the axes: axis `i` of the result is axis `perm[i]` of this value.
    pub fn transpose(&self, perm: &[usize]) -> Tensor {
        self.unary(Op::Transpose {
            perm: perm.to_vec(),
        })
    }
    /// This value and `other` joined along `axis` (see [`Op::Concat`]).
    pub fn concat(&self, other: &Tensor, axis: usize) -> Tensor {
        self.binary(Op::Concat { axis }, other)
    }
    /// `len` elements of `axis` from `start` (see [`Op::Slice`]).
    pub fn slice(&self, axis: usize, start: usize, len: usize) -> Tensor {
        self.unary(Op::Slice { axis, start, len })
    }
    /// Sum along `axis`, which disappears.
    pub fn reduce_sum(&self, axis: usize) -> Tensor {
        self.unary(Op::ReduceSum { axis })
    }
    /// Index of the largest element of the last axis, which disappears (a float index).
    pub fn argmax(&self) -> Tensor {
        self.unary(Op::Argmax)
    }
    /// The mean softmax cross-entropy of these logits `[N, K]` against one-hot `labels`
    /// `[N, K]`, a scalar.
    pub fn softmax_cross_entropy(&self, labels: &Tensor) -> Tensor {
        self.binary(Op::SoftmaxCrossEntropy, labels)
    }
    /// The mean over rows of the summed binary cross-entropies of `sigmoid(self)` (logits
    /// `[N, K]`) against `labels` `[N, K]`, a scalar (see [`Op::SigmoidCrossEntropy`]).
    pub fn sigmoid_cross_entropy(&self, labels: &Tensor) -> Tensor {
        self.binary(Op::SigmoidCrossEntropy, labels)
    }
    /// The mean of `(self - target)^2` over every element, a scalar.
    pub fn mean_squared_error(&self, target: &Tensor) -> Tensor {
        self.binary(Op::MeanSquaredError, target)
    }
    /// Adds `op` with these inputs (the backward ops of [`GraphBuilder::gradients`]).
    pub(crate) fn apply(&self, op: Op, inputs: &[&Tensor]) -> Tensor {
        let ids: Vec<NodeId> = inputs.iter().map(|t| t.id).collect();
        add(&self.state, op, None, Shape::default(), &ids)
    }
    /// Repeats this value to `shape` (see [`Op::BroadcastTo`]).
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        self.unary(Op::BroadcastTo {
            shape: shape.into().0,
        })
    }
    /// Reveals this value to `party` under `name`.
    pub fn output_to(&self, party: PartyId, name: &str) -> Tensor {
        add(
            &self.state,
            Op::Output {
                party,
                name: name.to_string(),
            },
            Some(name.to_string()),
            Shape::default(),
            &[self.id],
        )
    }
}

macro_rules! overload {
    ($trait:ident, $method:ident) => {
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$method(&self, &rhs)
            }
        }
        impl ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(&self, rhs)
            }
        }
    };
}
overload!(Add, add);
overload!(Sub, sub);
overload!(Mul, mul);

impl ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_infer_shapes_and_visibility() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let b = g.party("bob");
        let x = g.input(a, "x", [4, 3]);
        let w = g.input(b, "w", [3, 2]);
        let bias = g.constant([2], vec![0.5, -0.5]);
        let local = &x * &x;
        assert_eq!(local.visibility(), Visibility::Private(a));
        let y = x.matmul(&w) + &bias;
        assert_eq!(y.shape(), Shape::new([4, 2]));
        assert_eq!(y.visibility(), Visibility::Shared);
        let out = (-&y).relu().output_to(a, "y");
        assert_eq!(out.visibility(), Visibility::Private(a));
        let graph = g.build().unwrap();
        assert_eq!(graph.parties(), &["alice".to_string(), "bob".to_string()]);
        assert_eq!(graph.output_nodes(), vec![out.id()]);
        assert_eq!(bias.visibility(), Visibility::Public);
    }

    #[test]
    fn shape_mismatch_names_the_node() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [4, 3]);
        let w = g.input(a, "w", [4, 2]);
        let _ = x.matmul(&w).relu();
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::Shape { op: "matmul", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("matmul_"), "{err}");
    }

    #[test]
    fn private_statistics_are_refused() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let b = g.party("bob");
        let x = g.input(a, "x", [2, 3]);
        let mean = g.input(b, "secret-mean", [3]);
        let one = g.constant([3], vec![1.0; 3]);
        let _ = x.batchnorm(&mean, &one, &one, &one, 1e-5);
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::PrivateAsPublic { ref input, .. } if input.contains("secret-mean")),
            "{err}"
        );
    }

    #[test]
    fn output_to_missing_party_is_refused() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [2]);
        let _ = x.output_to(PartyId(5), "y");
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::OutputToUnknownParty { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("'y'"), "{err}");
    }

    #[test]
    fn two_inputs_with_one_name_are_refused() {
        // One party twice, and two parties (values are given by input name).
        for second_owner in ["alice", "bob"] {
            let g = GraphBuilder::new();
            let a = g.party("alice");
            let b = g.party(second_owner);
            let x = g.input(a, "x", [2]);
            let y = g.input(b, "x", [2]);
            let _ = (&x + &y).output_to(a, "z");
            let err = g.build().unwrap_err();
            assert!(
                matches!(&err, GraphError::DuplicateInput { name, first, second }
                    if name == "x" && first.starts_with("n0") && second.starts_with("n1")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_variable_named_as_an_input_is_refused() {
        // The owner gives a variable's first value by its name, as an input's.
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "w", [2]);
        let w = g.variable("w", [2], crate::Init::Zeros);
        let _ = (&x + &w).output_to(a, "z");
        let err = g.build().unwrap_err();
        assert!(
            matches!(&err, GraphError::DuplicateInput { name, .. } if name == "w"),
            "{err}"
        );
    }

    #[test]
    fn two_outputs_with_one_name_to_one_party_are_refused() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [2]);
        let _ = x.output_to(a, "y");
        let _ = x.relu().output_to(a, "y");
        let err = g.build().unwrap_err();
        assert!(
            matches!(&err, GraphError::DuplicateOutput { name, party, .. }
                if name == "y" && party == "alice"),
            "{err}"
        );
        // The same name to two parties is two outputs.
        let g = GraphBuilder::new();
        let (a, b) = (g.party("alice"), g.party("bob"));
        let x = g.input(a, "x", [2]);
        let _ = x.output_to(a, "y");
        let _ = x.output_to(b, "y");
        assert!(g.build().is_ok());
    }

    #[test]
    fn conv_and_pool_shapes() {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [2, 28, 28, 1]);
        let w = g.input(a, "w", [5, 5, 1, 5]);
        let y = x.conv2d(&w, [2, 2], Padding::Same);
        assert_eq!(y.shape(), Shape::new([2, 14, 14, 5]));
        let p = y.maxpool2d([3, 3], [2, 2], Padding::Valid);
        assert_eq!(p.shape(), Shape::new([2, 6, 6, 5]));
        let q = y.avgpool2d([2, 2], [2, 2], Padding::Same);
        assert_eq!(q.shape(), Shape::new([2, 7, 7, 5]));
        assert_eq!(q.flatten().shape(), Shape::new([2, 245]));
        assert_eq!(q.transpose(&[0, 3, 1, 2]).shape(), Shape::new([2, 5, 7, 7]));
        assert_eq!(q.reduce_sum(3).shape(), Shape::new([2, 7, 7]));
        g.build().unwrap();
    }
}
