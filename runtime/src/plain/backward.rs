//! Reverse-mode differentiation of a forward pass.
//!
//! Differentiable ops: add, sub, mul, neg (with bias broadcasting), matmul, conv2d, maxpool2d,
//! avgpool2d, relu, sigmoid, softmax, batchnorm (with respect to `x`; its statistics are
//! public constants), reshape, transpose, reduce_sum and output. Constants, argmax and the
//! comparison-like ops carry no gradient.

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, Axis, Ix1, Ix2, Ix4, IxDyn, Zip};
use shareflow_graphs::{Graph, NodeId, Op};
use shareflow_ops::plain::{self as k, to_rank};

use super::{padding, window, Evaluation};
use crate::{Result, RuntimeError};

/// Gradients of `sum_i <seed_i, node_i>` with respect to the nodes in `wrt`, given the forward
/// pass `eval`. Only the paths that lead to `wrt` are differentiated.
pub fn backward(
    graph: &Graph,
    eval: &Evaluation,
    seeds: Vec<(NodeId, ArrayD<f32>)>,
    wrt: &[NodeId],
) -> Result<HashMap<NodeId, ArrayD<f32>>> {
    let order = graph.topo_order()?;
    // Which nodes depend on a node of `wrt`: only those need a gradient.
    let mut needs: HashSet<NodeId> = wrt.iter().copied().collect();
    for &id in &order {
        if graph.inputs(id).iter().any(|i| needs.contains(i)) {
            needs.insert(id);
        }
    }
    let mut grads: HashMap<NodeId, ArrayD<f32>> = HashMap::new();
    for (id, g) in seeds {
        accumulate(&mut grads, id, g);
    }
    for &id in order.iter().rev() {
        if !needs.contains(&id) {
            continue;
        }
        let Some(g) = grads.remove(&id) else { continue };
        if wrt.contains(&id) {
            grads.insert(id, g.clone());
        }
        let inputs = graph.inputs(id);
        for (slot, dx) in node_backward(graph, eval, id, &g, &inputs, &needs)? {
            accumulate(&mut grads, inputs[slot], dx);
        }
    }
    grads.retain(|id, _| wrt.contains(id));
    Ok(grads)
}

fn accumulate(grads: &mut HashMap<NodeId, ArrayD<f32>>, id: NodeId, g: ArrayD<f32>) {
    match grads.get_mut(&id) {
        Some(acc) => *acc += &g,
        None => {
            grads.insert(id, g);
        }
    }
}

/// The gradient contributions of node `id` to its inputs (by input slot).
fn node_backward(
    graph: &Graph,
    eval: &Evaluation,
    id: NodeId,
    g: &ArrayD<f32>,
    inputs: &[NodeId],
    needs: &HashSet<NodeId>,
) -> Result<Vec<(usize, ArrayD<f32>)>> {
    let node = graph.node(id)?;
    let at = |e: shareflow_ops::OpsError| RuntimeError::Node {
        node: graph.label(id),
        message: format!("backward: {e}"),
    };
    let x = |slot: usize| eval.value(graph, inputs[slot]);
    let want = |slot: usize| inputs.get(slot).is_some_and(|i| needs.contains(i));
    let mut out = Vec::new();
    match &node.op {
        Op::Constant { .. } | Op::Input { .. } | Op::Argmax => {}
        Op::Add | Op::Sub => {
            if want(0) {
                out.push((0, k::reduce_to_shape(g.view(), x(0)?.shape()).map_err(at)?));
            }
            if want(1) {
                let mut d = k::reduce_to_shape(g.view(), x(1)?.shape()).map_err(at)?;
                if matches!(node.op, Op::Sub) {
                    d.mapv_inplace(|v| -v);
                }
                out.push((1, d));
            }
        }
        Op::Mul => {
            for (slot, other) in [(0, 1), (1, 0)] {
                if want(slot) {
                    let prod = k::mul(g.view(), x(other)?.view()).map_err(at)?;
                    out.push((
                        slot,
                        k::reduce_to_shape(prod.view(), x(slot)?.shape()).map_err(at)?,
                    ));
                }
            }
        }
        Op::Neg => out.push((0, g.mapv(|v| -v))),
        Op::MatMul => {
            let a = to_rank::<_, Ix2>(x(0)?.view(), "matmul").map_err(at)?;
            let b = to_rank::<_, Ix2>(x(1)?.view(), "matmul").map_err(at)?;
            let dy = to_rank::<_, Ix2>(g.view(), "matmul").map_err(at)?;
            if want(0) {
                out.push((0, k::matmul(dy, b.t()).map_err(at)?.into_dyn()));
            }
            if want(1) {
                out.push((1, k::matmul(a.t(), dy).map_err(at)?.into_dyn()));
            }
        }
        Op::Conv2d { stride, padding: p } => {
            let xv = to_rank::<_, Ix4>(x(0)?.view(), "conv2d").map_err(at)?;
            let wv = to_rank::<_, Ix4>(x(1)?.view(), "conv2d").map_err(at)?;
            let dy = to_rank::<_, Ix4>(g.view(), "conv2d").map_err(at)?;
            let s = (stride[0], stride[1]);
            let shape = |v: &ndarray::ArrayView4<f32>| {
                let (a, b, c, d) = v.dim();
                [a, b, c, d]
            };
            match (want(0), want(1)) {
                (true, true) => {
                    let gr = k::conv2d_backward(xv, wv, dy, s, padding(*p)).map_err(at)?;
                    out.push((0, gr.dx.into_dyn()));
                    out.push((1, gr.dw.into_dyn()));
                }
                (true, false) => {
                    let dx =
                        k::conv2d_backward_input(shape(&xv), wv, dy, s, padding(*p)).map_err(at)?;
                    out.push((0, dx.into_dyn()));
                }
                (false, true) => {
                    let dw = k::conv2d_backward_filter(xv, shape(&wv), dy, s, padding(*p))
                        .map_err(at)?;
                    out.push((1, dw.into_dyn()));
                }
                (false, false) => {}
            }
        }
        Op::MaxPool2d { .. } => {
            let argmax = eval.argmax.get(&id).ok_or_else(|| RuntimeError::Node {
                node: graph.label(id),
                message: "backward: no argmax recorded by the forward pass".into(),
            })?;
            let xs = x(0)?.shape();
            let dy = to_rank::<_, Ix4>(g.view(), "maxpool2d").map_err(at)?;
            let dx = k::maxpool2d_backward(dy, argmax.view(), [xs[0], xs[1], xs[2], xs[3]])
                .map_err(at)?;
            out.push((0, dx.into_dyn()));
        }
        Op::AvgPool2d { window: w } => {
            let xs = x(0)?.shape();
            let dy = to_rank::<_, Ix4>(g.view(), "avgpool2d").map_err(at)?;
            let dx =
                k::avgpool2d_backward(dy, [xs[0], xs[1], xs[2], xs[3]], &window(w)).map_err(at)?;
            out.push((0, dx.into_dyn()));
        }
        Op::Relu => out.push((0, k::relu_backward(x(0)?.view(), g.view()).map_err(at)?)),
        Op::Sigmoid => {
            let y = eval.value(graph, id)?;
            out.push((0, k::sigmoid_backward(y.view(), g.view()).map_err(at)?));
        }
        Op::Softmax => {
            // dx = y * (g - sum(g * y, last axis))
            let y = eval.value(graph, id)?;
            let last = Axis(y.ndim() - 1);
            let dot = (g * y).sum_axis(last).insert_axis(last);
            out.push((0, y * &(g - &dot)));
        }
        Op::BatchNorm { epsilon } => {
            let var = to_rank::<_, Ix1>(x(2)?.view(), "batchnorm").map_err(at)?;
            let gamma = to_rank::<_, Ix1>(x(3)?.view(), "batchnorm").map_err(at)?;
            let scale = Zip::from(&var)
                .and(&gamma)
                .map_collect(|&v, &gm| gm / (v + epsilon).sqrt());
            out.push((0, g * &scale));
        }
        Op::Reshape { .. } => {
            let dims = x(0)?.shape().to_vec();
            let dx = g
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(&dims))
                .map_err(|e| RuntimeError::Node {
                    node: graph.label(id),
                    message: format!("backward: {e}"),
                })?;
            out.push((0, dx));
        }
        Op::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out.push((
                0,
                g.view()
                    .permuted_axes(IxDyn(&inverse))
                    .as_standard_layout()
                    .into_owned(),
            ));
        }
        Op::ReduceSum { axis } => {
            let dims = x(0)?.shape().to_vec();
            let expanded = g.view().insert_axis(Axis(*axis));
            let dx = expanded
                .broadcast(IxDyn(&dims))
                .ok_or_else(|| RuntimeError::Node {
                    node: graph.label(id),
                    message: "backward: cannot broadcast the gradient".into(),
                })?
                .to_owned();
            out.push((0, dx));
        }
        Op::Output { .. } => out.push((0, g.clone())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::forward;
    use shareflow_graphs::{GraphBuilder, Padding};

    /// Central finite differences of `sum(r * output)` with respect to every input of `wrt`.
    fn check(graph: &Graph, inputs: HashMap<String, ArrayD<f32>>, out: NodeId, wrt: &[NodeId]) {
        let eval = forward(graph, &inputs).unwrap();
        let y = eval.value(graph, out).unwrap();
        let mut counter = 0usize;
        let r = ArrayD::from_shape_simple_fn(y.raw_dim(), || {
            counter += 1;
            ((counter * 5 % 7) as f32 - 3.0) / 3.0
        });
        let grads = backward(graph, &eval, vec![(out, r.clone())], wrt).unwrap();
        for &w in wrt {
            let name = match &graph.node(w).unwrap().op {
                Op::Input { name, .. } => name.clone(),
                _ => unreachable!(),
            };
            let g = &grads[&w];
            let x0 = inputs[&name].clone();
            let eps = 1e-2f32;
            for i in 0..x0.len() {
                let mut plus = inputs.clone();
                plus.get_mut(&name).unwrap().as_slice_mut().unwrap()[i] += eps;
                let mut minus = inputs.clone();
                minus.get_mut(&name).unwrap().as_slice_mut().unwrap()[i] -= eps;
                let f = |inp: &HashMap<String, ArrayD<f32>>| -> f64 {
                    let e = forward(graph, inp).unwrap();
                    let y = e.value(graph, out).unwrap();
                    y.iter()
                        .zip(r.iter())
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum()
                };
                let numeric = (f(&plus) - f(&minus)) / (2.0 * eps as f64);
                let analytic = g.as_slice().unwrap()[i] as f64;
                assert!(
                    (numeric - analytic).abs() <= 2e-2 * (1.0 + numeric.abs()),
                    "{name}[{i}]: numeric {numeric}, analytic {analytic}"
                );
            }
        }
    }

    fn values(shape: &[usize], seed: usize) -> ArrayD<f32> {
        // Distinct values away from relu/maxpool kinks.
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 37 + seed * 11) % 101) as f32 / 50.0 - 1.01)
            .collect();
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn small_cnn_gradients_match_finite_differences() {
        let g = GraphBuilder::new();
        let p = g.party("owner");
        let x = g.input(p, "x", [2, 6, 6, 2]);
        let w = g.input(p, "w", [3, 3, 2, 3]);
        let b = g.input(p, "b", [3]);
        let v = g.input(p, "v", [12, 4]);
        let h = (x.conv2d(&w, [1, 1], Padding::Same) + &b).relu();
        let h = h.maxpool2d([2, 2], [2, 2], Padding::Valid);
        let h = h.avgpool2d([2, 2], [1, 1], Padding::Valid).sigmoid();
        let h = h.flatten().matmul(&v);
        let y = (&h * &h - &h).softmax().transpose(&[1, 0]).reduce_sum(1);
        let graph = g.build().unwrap();
        let mut inputs = HashMap::new();
        inputs.insert("x".to_string(), values(&[2, 6, 6, 2], 1));
        inputs.insert("w".to_string(), values(&[3, 3, 2, 3], 2));
        inputs.insert("b".to_string(), values(&[3], 3));
        inputs.insert("v".to_string(), values(&[12, 4], 4));
        let wrt = [x.id(), w.id(), b.id(), v.id()];
        check(&graph, inputs, y.id(), &wrt);
    }

    #[test]
    fn strided_valid_conv_gradients() {
        let g = GraphBuilder::new();
        let p = g.party("owner");
        let x = g.input(p, "x", [1, 7, 7, 1]);
        let w = g.input(p, "w", [3, 3, 1, 2]);
        let y = x.conv2d(&w, [2, 2], Padding::Valid).neg();
        let graph = g.build().unwrap();
        let mut inputs = HashMap::new();
        inputs.insert("x".to_string(), values(&[1, 7, 7, 1], 5));
        inputs.insert("w".to_string(), values(&[3, 3, 1, 2], 6));
        check(&graph, inputs, y.id(), &[x.id(), w.id()]);
    }
}
